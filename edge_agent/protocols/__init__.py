"""Sans-IO device protocol parsers (and their inverse encoders, used by the simulators)."""

from edge_agent.protocols.base import (
    DeviceCondition,
    FrameRejected,
    Parser,
    ParserEvent,
    Reading,
    WaveformChunk,
)

__all__ = ["DeviceCondition", "FrameRejected", "Parser", "ParserEvent", "Reading", "WaveformChunk"]
