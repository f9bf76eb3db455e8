"""IEEE 11073-20601 SFLOAT and FLOAT: the decimal number formats of the Bluetooth health profiles.

Every Bluetooth SIG health characteristic (Health Thermometer, Blood Pressure, Pulse Oximeter...)
carries its measured values as IEEE 11073-20601 "medical" floats, not IEEE 754 binary floats:

* **SFLOAT** (16 bits): a signed 4-bit base-10 exponent (high nibble) and a signed 12-bit
  mantissa; value = mantissa * 10**exponent.
* **FLOAT** (32 bits): a signed 8-bit exponent (high byte) and a signed 24-bit mantissa.

Both reserve five mantissa values for things that are *not numbers*: NaN (not a valid result),
NRes (not at this resolution), +INF, -INF and one reserved value. A device sends NaN when it
has no value for a field (e.g. a cuff that does not compute MAP), so these must never be turned
into a number: a decoded value is either a ``float`` or a :class:`SpecialValue`.

References:
    * ISO/IEEE 11073-20601:2019 (Optimized exchange protocol), Annex F.8 "FLOAT-Type" and
      "SFLOAT-Type" data types.
    * Bluetooth SIG, GATT Specification Supplement (GSS), data types "medfloat16" (SFLOAT) and
      "medfloat32" (FLOAT): the same encodings, transmitted little-endian.

The special values are recognised by their mantissa alone, whatever the exponent: the standard
only defines them with exponent 0, and a malformed encoding with another exponent is safer as
"not a number" than as, say, 2047000. This module is the one place that knows these formats
(conventions.md section 1).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum


class SpecialValue(StrEnum):
    """The IEEE 11073-20601 values that are not numbers."""

    NAN = "NaN"
    NRES = "NRes"
    POSITIVE_INFINITY = "+INF"
    NEGATIVE_INFINITY = "-INF"
    RESERVED = "reserved"


MedFloat = float | SpecialValue
"""A decoded SFLOAT or FLOAT: a number, or the special value the device sent."""

# Mantissa offsets from the largest positive mantissa (2**(bits-1) - 1), per Annex F.8.
_SPECIAL_BY_OFFSET: dict[int, SpecialValue] = {
    0: SpecialValue.NAN,  # 0x07FF / 0x007FFFFF
    1: SpecialValue.NRES,  # 0x0800 / 0x00800000 (raw, i.e. the most negative mantissa)
    -1: SpecialValue.POSITIVE_INFINITY,  # 0x07FE / 0x007FFFFE
    3: SpecialValue.NEGATIVE_INFINITY,  # 0x0802 / 0x00800002
    2: SpecialValue.RESERVED,  # 0x0801 / 0x00800001
}


class _Format:
    """Bit layout of one of the two formats."""

    def __init__(self, name: str, exponent_bits: int, mantissa_bits: int) -> None:
        self.name = name
        self.exponent_bits = exponent_bits
        self.mantissa_bits = mantissa_bits
        self.max_raw = 1 << (exponent_bits + mantissa_bits)
        self.mantissa_mask = (1 << mantissa_bits) - 1
        self.nan_raw = (1 << (mantissa_bits - 1)) - 1  # 0x7FF / 0x7FFFFF
        # Largest mantissa magnitude that is a number: the specials sit at +-(nan_raw-1)...
        self.max_mantissa = self.nan_raw - 2
        self.min_exponent = -(1 << (exponent_bits - 1))
        self.max_exponent = (1 << (exponent_bits - 1)) - 1

    def special_of(self, raw_mantissa: int) -> SpecialValue | None:
        return _SPECIAL_BY_OFFSET.get(raw_mantissa - self.nan_raw)

    def raw_of(self, special: SpecialValue) -> int:
        offset = next(k for k, v in _SPECIAL_BY_OFFSET.items() if v is special)
        return (self.nan_raw + offset) & self.mantissa_mask


SFLOAT = _Format("SFLOAT", exponent_bits=4, mantissa_bits=12)
FLOAT = _Format("FLOAT", exponent_bits=8, mantissa_bits=24)


def _signed(raw: int, bits: int) -> int:
    return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw


def _decode(fmt: _Format, raw: int) -> MedFloat:
    if not 0 <= raw < fmt.max_raw:
        raise ValueError(f"{fmt.name} raw value {raw:#x} out of range")
    raw_mantissa = raw & fmt.mantissa_mask
    special = fmt.special_of(raw_mantissa)
    if special is not None:
        return special
    mantissa = _signed(raw_mantissa, fmt.mantissa_bits)
    exponent = _signed(raw >> fmt.mantissa_bits, fmt.exponent_bits)
    # Divide for negative exponents so that e.g. 365e-1 is the correctly rounded 36.5.
    if exponent >= 0:
        return float(mantissa * 10**exponent)
    return mantissa / int(10**-exponent)


def decode_sfloat(raw: int) -> MedFloat:
    """Decode a 16-bit SFLOAT given as an unsigned integer (already byte-swapped).

    Args:
        raw: The 16-bit value, 0..0xFFFF.

    Returns:
        The number, or the :class:`SpecialValue` the device sent.

    Raises:
        ValueError: ``raw`` does not fit in 16 bits (a programming error, not line noise).
    """
    return _decode(SFLOAT, raw)


def decode_float(raw: int) -> MedFloat:
    """Decode a 32-bit FLOAT given as an unsigned integer; see :func:`decode_sfloat`."""
    return _decode(FLOAT, raw)


def _encode(fmt: _Format, value: MedFloat) -> int:
    if isinstance(value, SpecialValue):
        return fmt.raw_of(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a number; pass a SpecialValue instead")
    # The shortest decimal that round-trips the float is what the device "meant".
    sign, digits, exp = Decimal(repr(float(value))).normalize().as_tuple()
    assert isinstance(exp, int)  # finite, checked above
    mantissa = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    # Too many digits, or an exponent below the format's range: drop the fewest digits that
    # fit, rounding once from the exact value (rounding digit by digit would round twice).
    drop = 0
    while True:
        exact = Decimal(mantissa).scaleb(-drop)
        rounded = int(exact.to_integral_value(rounding=ROUND_HALF_EVEN))
        if abs(rounded) <= fmt.max_mantissa and exp + drop >= fmt.min_exponent:
            break
        drop += 1
    mantissa, exp = rounded, exp + drop
    # Prefer exponent 0 for whole numbers that fit (72 as 72e0, not 72 -> "7.2e1"), which is
    # how devices send them; this also brings an exponent above the range back into it.
    while exp > 0 and abs(mantissa * 10) <= fmt.max_mantissa:
        mantissa, exp = mantissa * 10, exp - 1
    if exp > fmt.max_exponent:
        raise ValueError(f"{value!r} is too large for {fmt.name}")
    if mantissa == 0:
        exp = 0
    mask = (1 << fmt.exponent_bits) - 1
    return ((exp & mask) << fmt.mantissa_bits) | (mantissa & fmt.mantissa_mask)


def encode_sfloat(value: MedFloat) -> int:
    """Encode a number (or special value) as a 16-bit SFLOAT, the inverse of :func:`decode_sfloat`.

    The encoder keeps the decimal digits of ``value``'s shortest representation (``36.5`` is
    sent as 365e-1, ``70`` as 70e0), rounding half-even only when the 12-bit mantissa cannot
    hold them all, so values with few significant digits survive a round trip exactly.

    Raises:
        ValueError: ``value`` is NaN/infinite (use a :class:`SpecialValue`) or out of range.
    """
    return _encode(SFLOAT, value)


def encode_float(value: MedFloat) -> int:
    """Encode as a 32-bit FLOAT, the inverse of :func:`decode_float`; see :func:`encode_sfloat`."""
    return _encode(FLOAT, value)
