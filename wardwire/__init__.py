"""wardwire: the one wire contract every wardwatch component speaks.

Payload models (``wardwire.models``), topic builders (``wardwire.topics``), the vital-sign
parameter table (``wardwire.params``) and the unit context the registry serves
(``wardwire.context``). Pure: pydantic and the standard library, no file or network I/O, no
clock, no environment.
"""

from wardwire.models import (
    SCHEMA_VERSION,
    AckCommand,
    Alert,
    AlertEvent,
    DeadLetter,
    DeviceStatus,
    GatewayStatus,
    Generation,
    Observation,
    ObservationBatch,
    Quality,
    ScoreUpdate,
    Source,
    TechnicalEvent,
    WaveformBlock,
)
from wardwire.params import PARAMETERS, Parameter, parameter

__all__ = [
    "PARAMETERS",
    "SCHEMA_VERSION",
    "AckCommand",
    "Alert",
    "AlertEvent",
    "DeadLetter",
    "DeviceStatus",
    "GatewayStatus",
    "Generation",
    "Observation",
    "ObservationBatch",
    "Parameter",
    "Quality",
    "ScoreUpdate",
    "Source",
    "TechnicalEvent",
    "WaveformBlock",
    "parameter",
]
