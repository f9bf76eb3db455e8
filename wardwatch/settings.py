"""Service settings: one pydantic-settings object, read once in each service's entry point.

Every field comes from a ``WM_``-prefixed environment variable (``WM_MQTT_HOST``...) or a CLI
flag; libraries and cores take plain arguments and never read the environment themselves.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from wardwatch.mqtt import MqttParams
from wardwire import topics


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WM_", extra="ignore")

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    topic_root: str = topics.ROOT
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "wardwatch"
    influx_username: str | None = None
    influx_password: str | None = None
    ward_file: Path = Path("ward.toml")
    log_level: str = "INFO"

    def mqtt_params(self) -> MqttParams:
        return MqttParams(
            host=self.mqtt_host,
            port=self.mqtt_port,
            username=self.mqtt_username,
            password=self.mqtt_password,
            ca_file=self.mqtt_ca_file,
            cert_file=self.mqtt_cert_file,
            key_file=self.mqtt_key_file,
        )
