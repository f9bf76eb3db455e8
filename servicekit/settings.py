"""Service settings: one pydantic-settings object, read once in each service's entry point.

Every field comes from a ``WM_``-prefixed environment variable (``WM_MQTT_HOST``...) or a CLI
flag; libraries and cores take plain arguments and never read the environment themselves.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from servicekit.mqtt import MqttParams
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
    #: where the unit context comes from: a ward file path or the registry's URL (overrides
    #: ``ward_file`` when set)
    context: str | None = None
    #: the CA that signed an ``https://`` registry's certificate (unset: the system's trust
    #: store); separate from ``mqtt_ca_file``, since the registry may sit behind another CA
    registry_ca_file: Path | None = None
    #: a 0600 file holding the registry bearer token of this service's user (role ``service``,
    #: ``wardwatch registry user token USER --out FILE``); or the token itself in
    #: ``WM_REGISTRY_TOKEN`` (never on the command line)
    registry_token_file: Path | None = None
    registry_token: SecretStr | None = None
    log_level: str = "INFO"

    def context_source(self, cli_value: str | Path | None = None) -> str:
        """The unit-context source: the CLI's ``--context``/``--ward``, else ``WM_CONTEXT``,
        else ``WM_WARD_FILE``."""
        if cli_value is not None:
            return str(cli_value)
        return self.context if self.context is not None else str(self.ward_file)

    def registry_token_value(self) -> str | None:
        """``WM_REGISTRY_TOKEN``'s value (the file, when set, is read by the context source)."""
        return self.registry_token.get_secret_value() if self.registry_token else None

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
