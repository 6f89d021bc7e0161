"""burn models stored by blooming-flowers (``Model<M>`` fields), read without Rust or burn.

A ``Model<M>`` artifact is stored as a MessagePack map (or nil while the model is unset)::

    {burn_version: "0.22.1", format: "burnpack", module: "<Rust type>",
     config: "<the module's config as JSON>", record: <burnpack bytes>}

The record is burn's "burnpack" container: a 10-byte header (magic ``BURN`` as a little-endian
u32, format version u16, metadata size u32), CBOR metadata (``tensors``: name -> dtype, shape,
byte offsets), then the raw little-endian tensor data, the data section and every tensor starting
on a 256-byte boundary. :func:`model_from_value` turns the decoded artifact value into a
:class:`Model` whose ``tensors`` are numpy arrays viewing the record's bytes (no copy), keyed by
their record path (``l1.weight``), as ``MYFLOW export-model`` writes them to ``.safetensors``.

Tensors keep burn's layout: a ``Linear`` weight is ``[in, out]``, where PyTorch's ``nn.Linear``
holds ``[out, in]`` (transpose it for PyTorch).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2
import numpy as np

#: The record container this module reads.
RECORD_FORMAT = "burnpack"
#: ``BURN`` as burnpack's little-endian u32 magic number.
MAGIC = 0x4255524E
#: The newest burnpack format version this module reads.
FORMAT_VERSION = 1
HEADER_SIZE = 10
TENSOR_ALIGNMENT = 256
#: The stored form's keys, all required.
MODEL_KEYS = ("burn_version", "format", "module", "config", "record")

# burn's dtype names (its serde names, as the CBOR metadata holds them) -> numpy dtypes, all
# little-endian. `Flex32` is an f32 in memory. `BF16` has no numpy type: see `_bf16_to_f32`.
_NUMPY_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "Flex32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
}


class ModelError(ValueError):
    """A value that is not a stored model, or a record that cannot be read."""


@dataclass(frozen=True)
class Model:
    """A stored burn model: its tensors as numpy arrays and its config.

    ``tensors`` maps each parameter's record path (``input.weight``) to a read-only numpy array
    of its dtype and shape that views the record's bytes (``bfloat16`` tensors, which numpy cannot
    hold, and booleans stored as u32 are the exceptions: converted copies, see
    :func:`model_from_value`).
    """

    burn_version: str
    format: str
    module: str
    config: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(repr=False)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}: {a.dtype}{list(a.shape)}" for name, a in self.tensors.items())
        return (
            f"Model({self.module}, burn {self.burn_version}, config={self.config}, "
            f"tensors={{{shapes}}})"
        )

    @property
    def parameter_count(self) -> int:
        """How many values all tensors hold together."""
        return sum(int(a.size) for a in self.tensors.values())


#: How a model artifact's Rust type (``done.json``'s ``type``) starts.
MODEL_TYPE_PREFIX = "flow_runtime::burn_model::Model<"


def is_model_type(rust_type: str) -> bool:
    """Whether an artifact's recorded Rust type is a ``Model<M>`` (set or not)."""
    return rust_type.startswith(MODEL_TYPE_PREFIX)


def is_model_value(value: Any) -> bool:
    """Whether ``value`` (a decoded artifact) is the stored form of a set ``Model<M>``."""
    return (
        isinstance(value, Mapping)
        and all(key in value for key in MODEL_KEYS)
        and isinstance(value["format"], str)
        and isinstance(value["config"], str)
        and _is_bytes_like(value["record"])
    )


def model_from_value(value: Any) -> Model:
    """The :class:`Model` of a decoded ``Model<M>`` artifact value.

    ``value["record"]`` may be ``bytes``, ``bytearray``, a ``memoryview`` or a ``uint8`` numpy
    array; the tensors view it without copying (keep it alive as long as they are used: they do).
    ``bfloat16`` tensors become ``float32`` (exactly: every bfloat16 is a float32), booleans
    stored as u32 become ``bool`` arrays; both are copies.

    Raises :class:`ModelError` for nil (an unset model), a value of another shape, a record in
    another format, or a damaged record, naming what is wrong.
    """
    if value is None:
        raise ModelError("the model is unset (nil): the step that stored it never assigned it")
    if not isinstance(value, Mapping):
        raise ModelError(
            f"not a stored model:"
            f" a {type(value).__name__}, not a map with keys {', '.join(MODEL_KEYS)}"
        )
    missing = [key for key in MODEL_KEYS if key not in value]
    if missing:
        raise ModelError(
            f"not a stored model: it has no {', '.join(missing)} "
            f"(a model has {', '.join(MODEL_KEYS)})"
        )
    fmt = value["format"]
    if fmt != RECORD_FORMAT:
        raise ModelError(
            f"the model's record is stored as {fmt!r};"
            f" this reader reads {RECORD_FORMAT!r}"
        )
    try:
        config = json.loads(value["config"])
    except (TypeError, ValueError) as e:
        raise ModelError(f"the model's config is not JSON: {e}") from e
    record = value["record"]
    if not _is_bytes_like(record):
        raise ModelError(f"the model's record is a {type(record).__name__}, not bytes")
    return Model(
        burn_version=str(value["burn_version"]),
        format=fmt,
        module=str(value["module"]),
        config=config,
        tensors=read_burnpack(record),
    )


def read_burnpack(record: Any) -> dict[str, np.ndarray]:
    """Every tensor of a burnpack record, by name (sorted), as numpy arrays viewing ``record``.

    Raises :class:`ModelError` if the bytes are not a burnpack container this reader knows, or
    are cut short.
    """
    buf = _as_bytes_view(record)
    size = len(buf)
    if size < HEADER_SIZE:
        raise ModelError(
            f"the record ({size} bytes) is shorter than a burnpack header "
            f"({HEADER_SIZE} bytes)"
        )
    magic, version, metadata_size = struct.unpack_from("<IHI", buf, 0)
    if magic != MAGIC:
        raise ModelError(
            f"the record ({size} bytes) is not burnpack:"
            f" its magic number is {magic:#010x}, not {MAGIC:#010x}"
        )
    if version > FORMAT_VERSION:
        raise ModelError(
            f"the record is burnpack format version {version};"
            f" this reader reads up to {FORMAT_VERSION}"
        )
    metadata_end = HEADER_SIZE + metadata_size
    if metadata_end > size:
        raise ModelError(
            f"the record ({size} bytes) is cut short:"
            f" its metadata ends at byte {metadata_end}"
        )
    try:
        metadata = cbor2.loads(bytes(buf[HEADER_SIZE:metadata_end]))
    except Exception as e:  # cbor2 raises several types for damaged input
        raise ModelError(f"the record's metadata is not CBOR: {e}") from e
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("tensors"), Mapping):
        raise ModelError("the record's metadata has no `tensors` map")
    data_start = -(-metadata_end // TENSOR_ALIGNMENT) * TENSOR_ALIGNMENT
    tensors: dict[str, np.ndarray] = {}
    for name in sorted(metadata["tensors"]):
        tensors[name] = _tensor(buf, data_start, name, metadata["tensors"][name])
    return tensors


def _tensor(buf: memoryview, data_start: int, name: str, descriptor: Any) -> np.ndarray:
    try:
        dtype = descriptor["dtype"]
        shape = tuple(int(d) for d in descriptor["shape"])
        start, end = (int(o) for o in descriptor["data_offsets"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"tensor {name!r}: its descriptor is damaged ({e!r})") from e
    start += data_start
    end += data_start
    if not 0 <= start <= end <= len(buf):
        raise ModelError(
            f"tensor {name!r}: its bytes {start}..{end} are outside the record "
            f"({len(buf)} bytes)"
        )
    count = math.prod(shape)
    raw = buf[start:end]

    def checked(np_dtype: str) -> np.ndarray:
        itemsize = np.dtype(np_dtype).itemsize
        if len(raw) != count * itemsize:
            raise ModelError(
                f"tensor {name!r}: {len(raw)} bytes for shape {list(shape)} of {np_dtype} "
                f"({count * itemsize} expected)"
            )
        return np.frombuffer(raw, dtype=np_dtype, count=count).reshape(shape)

    if isinstance(dtype, str) and dtype in _NUMPY_DTYPES:
        return checked(_NUMPY_DTYPES[dtype])
    if dtype == "BF16":
        return _bf16_to_f32(checked("<u2"))
    if isinstance(dtype, Mapping) and "Bool" in dtype:
        store = dtype["Bool"]
        if store in ("Native", "U8"):
            return checked("u1").view(np.bool_)
        if store == "U32":
            return checked("<u4") != 0
    raise ModelError(f"tensor {name!r} is of type {dtype!r}, which this reader does not convert")


def _bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns as float32: the same sign and exponent, the mantissa padded."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _is_bytes_like(value: Any) -> bool:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return True
    return isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 1


def _as_bytes_view(record: Any) -> memoryview:
    if isinstance(record, np.ndarray):
        record = np.ascontiguousarray(record)
    view = memoryview(record)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return view
