"""Models out of the datastore: the ``.safetensors`` file ``train_burn export-model`` writes,
loaded with the ``safetensors`` package, against ``model_from_value`` of the run's artifact, bit
for bit.

The datastore comes from the real example binary (``$BLOOMING_EXAMPLES_DIR``, default
``target/debug/examples`` of the repository; ``cargo build --features burn --example
train_burn``). A missing binary fails the tests: nothing is skipped.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path

import cbor2
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from blooming_flowers import Flow
from blooming_flowers.models import (
    ModelError,
    is_model_type,
    is_model_value,
    model_from_value,
    read_burnpack,
)
from blooming_flowers.values import decode

REPO = Path(__file__).resolve().parents[2]
FLOW = "TrainBurn"


def _train_burn(datastore: Path, *args: str) -> str:
    default = REPO / "target" / "debug" / "examples"
    examples = Path(os.environ.get("BLOOMING_EXAMPLES_DIR", default))
    binary = examples / "train_burn"
    if not binary.is_file():
        pytest.fail(
            f"{binary} is missing: build it first "
            "(cargo build --features burn --example train_burn), "
            "or point BLOOMING_EXAMPLES_DIR at the directory that has it"
        )
    done = subprocess.run(
        [str(binary), "--datastore", str(datastore), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.fail(
            f"train_burn {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A train_burn run and its ``best`` model exported: (datastore, run id, safetensors path)."""
    root = tmp_path_factory.mktemp("export_model")
    datastore = root / "datastore"
    output = _train_burn(datastore, "run", "--epochs", "20")
    run_id = next(line.split()[1] for line in output.splitlines() if line.startswith("Run "))
    path = root / "best.safetensors"
    _train_burn(datastore, "export-model", f"{run_id}/pick", "best", "--output", str(path))
    return datastore, run_id, path


def _artifact_value(datastore: Path, run_id: str, step: str, name: str, task: str = "0"):
    """The decoded MessagePack value of an artifact, read the way the datastore lays it out."""
    done = datastore / "flows" / FLOW / "runs" / run_id / "steps" / step / task / "done.json"
    entries = {a["name"]: a for a in json.loads(done.read_text())["artifacts"]}
    entry = entries[name]
    assert entry["encoding"] == "msgpack", entry
    blob = (datastore / "blobs" / entry["hash"][:2] / entry["hash"]).read_bytes()
    assert len(blob) == entry["size"]
    return decode(blob)


def test_the_exported_file_holds_the_artifacts_weights_bit_for_bit(exported):
    datastore, run_id, path = exported
    model = model_from_value(_artifact_value(datastore, run_id, "pick", "best"))
    loaded = load_file(str(path))

    assert sorted(loaded) == ["input.bias", "input.weight", "output.bias", "output.weight"]
    assert sorted(loaded) == list(model.tensors)
    for name, ours in model.tensors.items():
        theirs = loaded[name]
        assert ours.dtype == theirs.dtype == np.float32, name
        assert ours.shape == theirs.shape, name
        # Bits, not values: NaNs and signed zeros would pass a value comparison.
        assert ours.tobytes() == theirs.tobytes(), name
    # burn's layout: Linear(1 -> hidden) holds [in, out].
    hidden = model.config["hidden"]
    assert model.tensors["input.weight"].shape == (1, hidden)
    assert model.tensors["output.weight"].shape == (hidden, 1)
    assert model.parameter_count == 3 * hidden + 1


def test_the_reader_gives_the_model_of_the_exported_file(exported):
    datastore, run_id, path = exported
    best = Flow(FLOW, datastore=str(datastore))[run_id]["pick"].task.data.best
    loaded = load_file(str(path))
    assert best.module.endswith("Mlp") and sorted(best.tensors) == sorted(loaded)
    for name, tensor in best.tensors.items():
        assert tensor.tobytes() == loaded[name].tobytes(), name


def test_the_config_is_beside_the_file_and_in_its_metadata(exported):
    datastore, run_id, path = exported
    model = model_from_value(_artifact_value(datastore, run_id, "pick", "best"))
    beside = json.loads(path.with_name("best.config.json").read_text())
    with safe_open(str(path), framework="numpy") as f:
        metadata = f.metadata()
    assert beside == model.config == json.loads(metadata["config"])
    assert metadata["module"] == model.module
    assert model.module.endswith("Mlp")
    assert metadata["burn_version"] == model.burn_version == "0.22.1"
    assert metadata["source"] == f"{FLOW}/{run_id}/pick/0/best"


def test_tensors_view_the_record_without_copying(exported):
    datastore, run_id, _ = exported
    value = _artifact_value(datastore, run_id, "pick", "best")
    record = value["record"]
    model = model_from_value(value)
    for name, tensor in model.tensors.items():
        assert not tensor.flags.owndata, name
        assert not tensor.flags.writeable, name
        assert np.shares_memory(tensor, np.frombuffer(record, dtype=np.uint8)), name
    # The same record as a uint8 numpy array (how a reader may hand out bytes) reads the same.
    as_array = dict(value, record=np.frombuffer(record, dtype=np.uint8))
    again = model_from_value(as_array)
    assert {n: t.tobytes() for n, t in again.tensors.items()} == {
        n: t.tobytes() for n, t in model.tensors.items()
    }


def test_only_set_models_are_model_values(exported):
    datastore, run_id, _ = exported
    done = datastore / "flows" / FLOW / "runs" / run_id / "steps" / "pick" / "0" / "done.json"
    types = {a["name"]: a["type"] for a in json.loads(done.read_text())["artifacts"]}
    assert is_model_type(types["best"]) and is_model_type(types["initial"])
    assert not is_model_type(types["optimizer"]) and not is_model_type(types["best_loss"])
    assert is_model_value(_artifact_value(datastore, run_id, "pick", "best"))
    assert is_model_value(_artifact_value(datastore, run_id, "start", "initial"))
    loss = _artifact_value(datastore, run_id, "pick", "best_loss")
    assert not is_model_value(loss)
    with pytest.raises(ModelError, match="not a stored model"):
        model_from_value(loss)
    # An optimizer's state is burnpack too, but has no module and no config.
    optimizer = _artifact_value(datastore, run_id, "train", "optimizer")
    assert isinstance(optimizer, dict) and optimizer["format"] == "burnpack"
    assert not is_model_value(optimizer)
    with pytest.raises(ModelError, match="has no module, config"):
        model_from_value(optimizer)
    # `best` is not set yet when `start` ends.
    unset = _artifact_value(datastore, run_id, "start", "best")
    assert unset is None and not is_model_value(unset)
    with pytest.raises(ModelError, match="unset"):
        model_from_value(unset)


def test_a_damaged_record_is_an_error_naming_what_is_wrong(exported):
    datastore, run_id, _ = exported
    value = _artifact_value(datastore, run_id, "pick", "best")
    record = bytes(value["record"])

    def damaged(new_record):
        return dict(value, record=new_record)

    with pytest.raises(ModelError, match="shorter than a burnpack header"):
        model_from_value(damaged(record[:5]))
    with pytest.raises(ModelError, match="magic number"):
        model_from_value(damaged(b"XXXX" + record[4:]))
    with pytest.raises(ModelError, match="cut short"):
        model_from_value(damaged(record[:20]))
    with pytest.raises(ModelError, match="outside the record"):
        model_from_value(damaged(record[:-1]))
    with pytest.raises(ModelError, match="format version 9"):
        model_from_value(damaged(record[:4] + b"\x09\x00" + record[6:]))
    with pytest.raises(ModelError, match="reads 'burnpack'"):
        model_from_value(dict(value, format="mpk"))
    with pytest.raises(ModelError, match="config is not JSON"):
        model_from_value(dict(value, config="{hidden"))


def _burnpack(tensors: dict[str, tuple[object, list[int], bytes]]) -> bytes:
    """A burnpack container as burn-pack lays it out (header, CBOR metadata, 256-aligned data)."""
    descriptors, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        data += b"\0" * (-len(data) % 256)
        offsets = [len(data), len(data) + len(raw)]
        descriptors[name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
        data += raw
    metadata = cbor2.dumps({"tensors": descriptors})
    head = struct.pack("<IHI", 0x4255524E, 1, len(metadata)) + metadata
    return head + b"\0" * (-len(head) % 256) + data


def test_every_element_type_reads_as_its_numpy_type():
    f16 = np.array([[1.5, -2.0, 65504.0]], dtype="<f2")
    i64 = np.array([-(2**62), 7], dtype="<i8")
    u16 = np.array([[1, 2], [3, 65535]], dtype="<u2")
    f32 = np.array([0.1, -0.0, np.inf], dtype="<f4")
    # bfloat16 is the upper half of a float32: these are exact.
    bf16_values = np.array([1.0, -3.5, 2.0**-10], dtype="<f4")
    bf16 = (bf16_values.view("<u4") >> 16).astype("<u2")
    record = _burnpack(
        {
            "f16": ("F16", [1, 3], f16.tobytes()),
            "i64": ("I64", [2], i64.tobytes()),
            "u16": ("U16", [2, 2], u16.tobytes()),
            "flex": ("Flex32", [3], f32.tobytes()),
            "bf16": ("BF16", [3], bf16.tobytes()),
            "mask": ({"Bool": "Native"}, [4], bytes([1, 0, 0, 1])),
            "mask32": ({"Bool": "U32"}, [2], np.array([0, 1], dtype="<u4").tobytes()),
        }
    )
    value = {"burn_version": "0.22.1", "format": "burnpack", "module": "Probe", "config": "{}"}
    model = model_from_value(dict(value, record=record))
    t = model.tensors
    assert list(t) == sorted(t)
    assert t["f16"].dtype == np.float16 and t["f16"].shape == (1, 3)
    assert t["f16"].tobytes() == f16.tobytes()
    assert t["i64"].dtype == np.int64 and (t["i64"] == i64).all()
    assert t["u16"].dtype == np.uint16 and (t["u16"] == u16).all()
    assert t["flex"].dtype == np.float32 and t["flex"].tobytes() == f32.tobytes()
    assert t["bf16"].dtype == np.float32 and t["bf16"].tobytes() == bf16_values.tobytes()
    assert t["mask"].dtype == np.bool_ and t["mask"].tolist() == [True, False, False, True]
    assert t["mask32"].dtype == np.bool_ and t["mask32"].tolist() == [False, True]
    assert model.parameter_count == 3 + 2 + 4 + 3 + 3 + 4 + 2

    with pytest.raises(ModelError, match="'q'.*does not convert"):
        read_burnpack(_burnpack({"q": ({"QFloat": {"value": "Q8S"}}, [1], b"\0")}))
    with pytest.raises(ModelError, match="4 bytes for shape \\[2\\] of <f4"):
        read_burnpack(_burnpack({"short": ("F32", [2], b"\0" * 4)}))
