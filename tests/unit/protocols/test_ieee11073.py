"""SFLOAT/FLOAT: known vectors (including specials and negative exponents) and round trips.

The vectors are computed by hand from the bit layout in ISO/IEEE 11073-20601 Annex F.8, not
from the encoder, so encoder and decoder cannot agree on a shared mistake.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.protocols.ieee11073 import (
    SpecialValue,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_sfloat,
)

SFLOAT_VECTORS = [
    (0x0072, 114.0),  # exponent 0, mantissa 114 (a heart rate)
    (0xF16D, 36.5),  # exponent -1, mantissa 365
    (0xE4D2, 12.34),  # exponent -2, mantissa 1234
    (0xFFFF, -0.1),  # exponent -1, mantissa -1
    (0x0FFF, -1.0),  # exponent 0, mantissa -1
    (0x8001, 1e-8),  # exponent -8 (most negative), mantissa 1
    (0x2001, 100.0),  # exponent +2, mantissa 1
    (0x77FD, 2045e7),  # largest number: exponent +7, mantissa 2045
    (0x0803, -2045.0),  # most negative mantissa that is a number
    (0x0000, 0.0),
    (0xF000, 0.0),  # zero with a non-zero exponent is still zero
]
SFLOAT_SPECIALS = [
    (0x07FF, SpecialValue.NAN),
    (0x0800, SpecialValue.NRES),
    (0x07FE, SpecialValue.POSITIVE_INFINITY),
    (0x0802, SpecialValue.NEGATIVE_INFINITY),
    (0x0801, SpecialValue.RESERVED),
    (0xF7FF, SpecialValue.NAN),  # special mantissa with another exponent: still not a number
    (0x1800, SpecialValue.NRES),
]
FLOAT_VECTORS = [
    (0xFF00016C, 36.4),  # the Health Thermometer example: mantissa 364, exponent -1
    (0x00000048, 72.0),
    (0xFE000E42, 36.5),  # mantissa 3650, exponent -2
    (0xFDFFFFFF, -0.001),  # mantissa -1, exponent -3
    (0x80000001, 1e-128),  # exponent -128 (most negative)
    (0x7F000001, 1e127),
    (0x00FFFFFE, -2.0),
]
FLOAT_SPECIALS = [
    (0x007FFFFF, SpecialValue.NAN),
    (0x00800000, SpecialValue.NRES),
    (0x007FFFFE, SpecialValue.POSITIVE_INFINITY),
    (0x00800002, SpecialValue.NEGATIVE_INFINITY),
    (0x00800001, SpecialValue.RESERVED),
    (0xFF7FFFFF, SpecialValue.NAN),
]


@pytest.mark.parametrize(("raw", "expected"), SFLOAT_VECTORS)
def test_sfloat_known_vectors(raw: int, expected: float) -> None:
    assert decode_sfloat(raw) == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize(("raw", "expected"), SFLOAT_SPECIALS)
def test_sfloat_specials_are_not_numbers(raw: int, expected: SpecialValue) -> None:
    value = decode_sfloat(raw)
    assert value is expected
    assert not isinstance(value, float)


@pytest.mark.parametrize(("raw", "expected"), FLOAT_VECTORS)
def test_float_known_vectors(raw: int, expected: float) -> None:
    assert decode_float(raw) == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize(("raw", "expected"), FLOAT_SPECIALS)
def test_float_specials_are_not_numbers(raw: int, expected: SpecialValue) -> None:
    assert decode_float(raw) is expected


def test_negative_exponent_decodes_to_the_nearest_double() -> None:
    # 365 * 0.1 would be 36.50000000000001; the decoder divides instead.
    assert decode_sfloat(0xF16D) == 36.5
    assert decode_float(0xFF00016C) == 36.4


def test_encoder_picks_the_documented_encodings() -> None:
    assert encode_sfloat(36.5) == 0xF16D
    assert encode_sfloat(114) == 0x0072
    assert encode_sfloat(100) == 0x0064  # exponent 0 preferred for whole numbers
    assert encode_sfloat(70) == 0x0046
    assert encode_sfloat(30000) == 0x212C  # 300e2: 30000 and 3000 exceed the mantissa
    assert encode_float(36.4) == 0xFF00016C
    assert encode_sfloat(0.0) == 0x0000


@pytest.mark.parametrize("special", list(SpecialValue))
def test_specials_round_trip(special: SpecialValue) -> None:
    assert decode_sfloat(encode_sfloat(special)) is special
    assert decode_float(encode_float(special)) is special


def test_encoder_rounds_what_the_mantissa_cannot_hold() -> None:
    assert decode_sfloat(encode_sfloat(12.3456)) == 12.35  # 1235 fits in 12 bits
    assert decode_sfloat(encode_sfloat(36.55555)) == 36.6  # 3656 does not (max 2045)
    assert decode_sfloat(encode_sfloat(123456)) == 123500.0
    # Rounded once from the exact value; digit by digit would go 20455 -> 2046 -> 205 (2.05).
    assert decode_sfloat(encode_sfloat(2.04549)) == 2.045


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_encoder_refuses_ieee754_specials(bad: float) -> None:
    with pytest.raises(ValueError, match="SpecialValue"):
        encode_sfloat(bad)


def test_encoder_refuses_out_of_range() -> None:
    with pytest.raises(ValueError, match="too large"):
        encode_sfloat(1e12)


@pytest.mark.parametrize("raw", [-1, 0x10000])
def test_decoder_refuses_raw_out_of_range(raw: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        decode_sfloat(raw)


def test_every_sfloat_decodes_and_reencodes_to_the_same_value() -> None:
    for raw in range(0x10000):  # exhaustive: 65536 values
        value = decode_sfloat(raw)
        again = decode_sfloat(encode_sfloat(value))
        assert again == value or again is value, hex(raw)


@given(st.integers(0, 0xFFFFFFFF))
def test_every_float_decodes_and_reencodes_to_the_same_value(raw: int) -> None:
    value = decode_float(raw)
    again = decode_float(encode_float(value))
    assert again == value or again is value


@given(st.integers(-2045, 2045), st.integers(-8, 7))
def test_sfloat_decimal_values_round_trip_exactly(mantissa: int, exponent: int) -> None:
    value = mantissa / 10**-exponent if exponent < 0 else float(mantissa * 10**exponent)
    assert decode_sfloat(encode_sfloat(value)) == value
