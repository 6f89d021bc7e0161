"""The MessagePack decoder, on bytes written as rmp-serde writes them."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from blooming_flowers.values import MAX_DEPTH, Struct, ValueDecodeError, decode, typed


def fixstr(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 32
    return bytes([0xA0 | len(raw)]) + raw


def array_header(n: int) -> bytes:
    return bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)


def test_structs_enums_options_and_scalars():
    # {"name": "mlp", "kind": "Big", "epoch": None, "ok": true, "lr": 0.5f32, "n": -3, "big": 2**40}
    data = (
        b"\x87"
        + fixstr("name") + fixstr("mlp")
        + fixstr("kind") + fixstr("Big")
        + fixstr("epoch") + b"\xc0"
        + fixstr("ok") + b"\xc3"
        + fixstr("lr") + b"\xca" + struct.pack(">f", 0.5)
        + fixstr("n") + b"\xfd"
        + fixstr("big") + b"\xcf" + struct.pack(">Q", 2**40)
    )  # fmt: skip
    value = decode(data)
    assert isinstance(value, Struct)
    assert value == {"name": "mlp", "kind": "Big", "epoch": None, "ok": True, "lr": 0.5, "n": -3, "big": 2**40}
    assert value.name == "mlp" and value.lr == 0.5
    with pytest.raises(AttributeError, match="no field 'nme'; the fields are name, kind"):
        value.nme
    # A newtype variant: a one-entry map.
    assert decode(b"\x81" + fixstr("Some") + b"\x05") == {"Some": 5}
    # A map with integer keys (a HashMap<u32, String>) is a plain dict.
    plain = decode(b"\x82\x01" + fixstr("a") + b"\x02" + fixstr("b"))
    assert plain == {1: "a", 2: "b"} and not isinstance(plain, Struct)


def test_float32_vectors_are_one_numpy_view():
    values = np.linspace(-1, 1, 1000, dtype=np.float32)
    body = b"".join(b"\xca" + struct.pack(">f", v) for v in values)
    decoded = decode(b"\xdc" + struct.pack(">H", len(values)) + body)
    assert decoded.dtype == np.float32
    assert np.array_equal(decoded, values)
    doubles = np.array([0.1, 2.5e300, -7.0] * 5)
    body = b"".join(b"\xcb" + struct.pack(">d", v) for v in doubles)
    decoded = decode(array_header(len(doubles)) + body)
    assert decoded.dtype == np.float64 and np.array_equal(decoded, doubles)


def test_integers_of_mixed_widths_keep_their_values():
    # 0..300 as rmp-serde writes them: fixints, then uint8, then uint16; and negatives.
    numbers = list(range(300)) + [-1, -32, -33, -200, -40000, 2**33]
    body = b""
    for n in numbers:
        if 0 <= n < 128:
            body += bytes([n])
        elif n < 0 and n >= -32:
            body += struct.pack(">b", n)
        elif 0 < n < 256:
            body += b"\xcc" + bytes([n])
        elif 0 < n < 65536:
            body += b"\xcd" + struct.pack(">H", n)
        elif 0 < n:
            body += b"\xcf" + struct.pack(">Q", n)
        elif n >= -128:
            body += b"\xd0" + struct.pack(">b", n)
        else:
            body += b"\xd2" + struct.pack(">i", n)
    decoded = decode(b"\xdc" + struct.pack(">H", len(numbers)) + body)
    assert isinstance(decoded, np.ndarray) and decoded.dtype == np.int64
    assert decoded.tolist() == numbers


def test_bytes_are_a_numpy_view_and_tuples_stay_lists():
    payload = bytes(range(256)) * 4
    decoded = decode(b"\xc5" + struct.pack(">H", len(payload)) + payload)
    assert decoded.dtype == np.uint8 and decoded.tobytes() == payload
    # A short array (a tuple) of mixed kinds is a list.
    assert decode(b"\x93\x01" + fixstr("x") + b"\xc2") == [1, "x", False]
    # Mixed integers and floats are not one numeric array.
    mixed = b"\x98" + b"\x01" * 7 + b"\xca" + struct.pack(">f", 1.5)
    assert decode(mixed) == [1] * 7 + [1.5]
    assert decode(b"\x9a" + bytes(range(10)), numpy_arrays=False) == list(range(10))


def test_the_rust_type_gives_the_dtype():
    assert typed(np.array([1, 2], dtype=np.int64), "alloc::vec::Vec<u8>").dtype == np.uint8
    assert typed([], "alloc::vec::Vec<f32>").dtype == np.float32
    assert typed([1.0, 2.0], "alloc::vec::Vec<f64>").dtype == np.float64
    assert typed([1, 2], "(u32, u32)") == [1, 2]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\xdc\x00\x05\x01\x02", "cannot fit|cut short"),
        (b"\xa5abc", "cut short"),
        (b"\xc1", "is not a MessagePack marker"),
        (b"\xd4\x01\x02", "extension"),
        (b"\x01\x02", "1 bytes follow the value"),
        (b"\xa2\xff\xfe", "not UTF-8"),
        (b"\xdf\xff\xff\xff\xff", "cannot fit"),
        (b"\x91" * (MAX_DEPTH + 2) + b"\x01", "nested deeper"),
    ],
)
def test_damaged_values_raise_a_decode_error(data, message):
    with pytest.raises(ValueDecodeError, match=message):
        decode(data)
