"""MessagePack artifacts decoded into the values Python users expect.

blooming-flowers stores every field as MessagePack the way ``rmp-serde`` writes it: structs as maps
of field name to value, enums as their variant's name (a unit variant) or a one-entry map
(``{"Variant": value}``), ``Option`` as nil or the value, ``serde_bytes`` as ``bin``, and every
number in its shortest form (``f32`` always as float32).

What comes out:

- maps whose keys are all strings (structs) as :class:`Struct`, a ``dict`` that also allows
  attribute access (``task.data.model.config``); other maps as ``dict``;
- arrays of numbers (``Vec<f32>``, ``Vec<u64>``, …) as numpy arrays, decoded without a loop per
  element: a run of elements written with the same marker is one strided numpy view (float32 is
  ``0xca`` then 4 big-endian bytes, so a ``Vec<f32>`` is a view of stride 5), converted in one
  pass;
- ``bin`` (``serde_bytes``) as a read-only ``numpy.uint8`` array over the blob, without a copy;
- every other array as a ``list``; strings as ``str``.

A damaged value (cut short, a marker that MessagePack does not have, nested deeper than
:data:`MAX_DEPTH`) raises :class:`ValueDecodeError`, never anything else.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

#: The deepest nesting decoded, as the Rust decoder limits it: a hostile value cannot exhaust the
#: stack.
MAX_DEPTH = 256

#: Arrays shorter than this are decoded element by element: a numpy array of two numbers is
#: slower to make than a list, and short arrays are mostly tuples.
_SHORT = 8


class ValueDecodeError(ValueError):
    """A stored value that is not MessagePack as blooming-flowers writes it."""


class Struct(dict):
    """A struct (a map with string keys): a ``dict`` whose entries are also attributes."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"no field {name!r}; the fields are {', '.join(map(str, self)) or '(none)'}"
            ) from None

    def __dir__(self):
        return list(self.keys()) + list(super().__dir__())


# The numeric markers of MessagePack: marker -> (bytes after the marker, numpy dtype of them).
_FIXED = {
    0xCA: (4, np.dtype(">f4")),
    0xCB: (8, np.dtype(">f8")),
    0xCC: (1, np.dtype("u1")),
    0xCD: (2, np.dtype(">u2")),
    0xCE: (4, np.dtype(">u4")),
    0xCF: (8, np.dtype(">u8")),
    0xD0: (1, np.dtype("i1")),
    0xD1: (2, np.dtype(">i2")),
    0xD2: (4, np.dtype(">i4")),
    0xD3: (8, np.dtype(">i8")),
}
_FLOATS = (0xCA, 0xCB)


def decode(data: bytes | bytearray | memoryview, numpy_arrays: bool = True) -> Any:
    """Decodes one MessagePack value that fills ``data`` exactly.

    With ``numpy_arrays=False``, arrays of numbers and ``bin`` come out as lists and ``bytes``.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    decoder = _Decoder(buffer, memoryview(data).cast("B"), numpy_arrays)
    value = decoder.value(0)
    if decoder.pos != len(buffer):
        raise ValueDecodeError(
            f"{len(buffer) - decoder.pos} bytes follow the value (at byte {decoder.pos})"
        )
    return value


class _Decoder:
    def __init__(self, array: np.ndarray, view: memoryview, numpy_arrays: bool):
        self.array = array
        self.view = view
        self.pos = 0
        self.numpy = numpy_arrays

    def _take(self, n: int) -> memoryview:
        start = self.pos
        end = start + n
        if end > len(self.view):
            raise ValueDecodeError(
                f"the value is cut short: {n} bytes needed at byte {start}, "
                f"{len(self.view) - start} left"
            )
        self.pos = end
        return self.view[start:end]

    def _unpack(self, fmt: str, n: int) -> Any:
        return struct.unpack(fmt, self._take(n))[0]

    def value(self, depth: int, as_key: bool = False) -> Any:
        if depth > MAX_DEPTH:
            raise ValueDecodeError(f"the value is nested deeper than {MAX_DEPTH} levels")
        m = self._take(1)[0]
        if m <= 0x7F:
            return m
        if m >= 0xE0:
            return m - 0x100
        if 0x80 <= m <= 0x8F:
            return self._map(m & 0x0F, depth)
        if 0x90 <= m <= 0x9F:
            return self._array(m & 0x0F, depth, as_key)
        if 0xA0 <= m <= 0xBF:
            return self._str(m & 0x1F)
        if m == 0xC0:
            return None
        if m == 0xC2:
            return False
        if m == 0xC3:
            return True
        if m in (0xC4, 0xC5, 0xC6):
            n = self._unpack({0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}[m], {0xC4: 1, 0xC5: 2, 0xC6: 4}[m])
            start = self.pos
            self._take(n)
            if self.numpy and not as_key:
                return self.array[start : start + n]
            return bytes(self.view[start : start + n])
        if m in _FIXED:
            size, dtype = _FIXED[m]
            value = np.frombuffer(self._take(size), dtype=dtype)[0]
            return float(value) if m in _FLOATS else int(value)
        if m in (0xD9, 0xDA, 0xDB):
            n = self._unpack({0xD9: ">B", 0xDA: ">H", 0xDB: ">I"}[m], {0xD9: 1, 0xDA: 2, 0xDB: 4}[m])
            return self._str(n)
        if m in (0xDC, 0xDD):
            return self._array(self._unpack(">H" if m == 0xDC else ">I", 2 if m == 0xDC else 4), depth, as_key)
        if m in (0xDE, 0xDF):
            return self._map(self._unpack(">H" if m == 0xDE else ">I", 2 if m == 0xDE else 4), depth)
        if 0xD4 <= m <= 0xD8 or m in (0xC7, 0xC8, 0xC9):
            raise ValueDecodeError(
                f"a MessagePack extension (marker {m:#04x}) at byte {self.pos - 1}: "
                "blooming-flowers never writes one"
            )
        raise ValueDecodeError(f"{m:#04x} at byte {self.pos - 1} is not a MessagePack marker")

    def _str(self, n: int) -> str:
        raw = self._take(n)
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError as e:
            raise ValueDecodeError(f"a string at byte {self.pos - n} is not UTF-8: {e}") from None

    def _map(self, n: int, depth: int) -> Any:
        if n > len(self.view) - self.pos:
            raise ValueDecodeError(f"a map of {n} entries cannot fit in what is left of the value")
        entries = {}
        all_str = True
        for _ in range(n):
            key = self.value(depth + 1, as_key=True)
            if isinstance(key, list):
                key = tuple(key)
            all_str = all_str and isinstance(key, str)
            entries[key] = self.value(depth + 1)
        return Struct(entries) if all_str and n > 0 else entries

    def _array(self, n: int, depth: int, as_key: bool) -> Any:
        if n > len(self.view) - self.pos:
            raise ValueDecodeError(f"an array of {n} elements cannot fit in what is left of the value")
        if self.numpy and not as_key and n >= _SHORT:
            numbers = self._numbers(n)
            if numbers is not None:
                return numbers
        return [self.value(depth + 1, as_key) for _ in range(n)]

    def _numbers(self, n: int) -> np.ndarray | None:
        """The array of ``n`` numbers at the current position, in runs of one marker each, or
        ``None`` (the position unchanged) if it is not all integers or all floats."""
        buf = self.array
        pos = self.pos
        remaining = n
        parts: list[np.ndarray] = []
        floats = None
        while remaining:
            if pos >= len(buf):
                raise ValueDecodeError(f"an array of {n} numbers is cut short at byte {pos}")
            m = int(buf[pos])
            if m <= 0x7F or m >= 0xE0:
                is_float, stride = False, 1
            elif m in _FIXED:
                is_float, stride = m in _FLOATS, 1 + _FIXED[m][0]
            else:
                return None
            if floats is None:
                floats = is_float
            elif floats != is_float:
                return None
            count = min(remaining, (len(buf) - pos) // stride)
            if count == 0:
                raise ValueDecodeError(f"an array of {n} numbers is cut short at byte {pos}")
            if stride == 1:
                run = buf[pos : pos + count]
                same = (run <= 0x7F) | (run >= 0xE0)
            else:
                run = buf[pos : pos + count * stride : stride]
                same = run == m
            k = count if bool(same.all()) else int(np.argmin(same))
            if stride == 1:
                part = buf[pos : pos + k].view(np.int8)
            else:
                part = _unpacked(self.view, pos, k, stride, _FIXED[m][1])
            parts.append(part)
            pos += k * stride
            remaining -= k
            # Elements whose widths change every few elements (random integers of mixed sizes):
            # element by element is faster than a numpy call per run.
            if len(parts) > 64 and (n - remaining) < 8 * len(parts):
                return None
        self.pos = pos
        return _join(parts, bool(floats))


def _unpacked(view: memoryview, pos: int, count: int, stride: int, dtype: np.dtype) -> np.ndarray:
    """The ``count`` big-endian values after the markers of the elements at ``pos`` (one every
    ``stride`` bytes), as a native array: one unaligned strided view over the blob, converted by
    numpy in one pass (several times faster than copying the bytes column by column)."""
    values = np.ndarray(shape=(count,), dtype=dtype, buffer=view, offset=pos + 1, strides=(stride,))
    return values.astype(dtype.newbyteorder("="))


def _join(parts: list[np.ndarray], floats: bool) -> np.ndarray:
    if floats:
        dtype = np.float32 if all(p.dtype.itemsize == 4 for p in parts) else np.float64
    elif any(p.dtype.kind == "u" and p.dtype.itemsize == 8 for p in parts) and any(
        int(p.max(initial=0)) > np.iinfo(np.int64).max for p in parts if p.dtype.kind == "u"
    ):
        dtype = np.uint64
    else:
        dtype = np.int64
    if len(parts) == 1:
        return parts[0].astype(dtype, copy=False)
    return np.concatenate([p.astype(dtype, copy=False) for p in parts])


# Rust element types of a plain `Vec<T>` artifact -> the numpy dtype the array is given.
_RUST_DTYPES = {
    "f32": np.float32,
    "f64": np.float64,
    "u8": np.uint8,
    "u16": np.uint16,
    "u32": np.uint32,
    "u64": np.uint64,
    "usize": np.uint64,
    "i8": np.int8,
    "i16": np.int16,
    "i32": np.int32,
    "i64": np.int64,
    "isize": np.int64,
}


def typed(value: Any, rust_type: str) -> Any:
    """``value`` given the exact numpy dtype of its Rust type when that is a plain vector of
    numbers (``alloc::vec::Vec<f32>`` → ``float32``), including an empty one."""
    prefix = "alloc::vec::Vec<"
    if not rust_type.startswith(prefix) or not rust_type.endswith(">"):
        return value
    dtype = _RUST_DTYPES.get(rust_type[len(prefix) : -1])
    if dtype is None:
        return value
    if isinstance(value, np.ndarray) and value.dtype != dtype:
        return value.astype(dtype)
    if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
        return np.array(value, dtype=dtype)
    return value
