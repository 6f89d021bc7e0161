"""The reader against datastores the Rust examples wrote in this session."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from blooming_flowers import (
    DamagedArtifact,
    Flow,
    NoSuchArtifact,
    NoSuchRun,
    NoSuchStep,
    NoSuchTask,
    Struct,
    flows,
)

from .conftest import example, examples_dir


def test_runs_steps_tasks_and_artifacts_of_squares(squares):
    flow = Flow("Squares", datastore=squares)
    runs = flow.runs()
    assert len(runs) == 2
    assert runs[0].started >= runs[1].started, "newest first"
    latest = flow.latest_successful_run
    assert latest.id == runs[0].id == flow.latest_run.id
    assert latest.successful and latest.status == "succeeded" and latest.finished
    assert [r.id for r in flow.runs("first")] == [runs[1].id]
    assert flow[runs[1].id].tags == ["first"]
    assert latest.params is None
    assert [s["name"] for s in latest.graph][:3] == ["start", "left", "right"]
    assert [s.name for s in latest.steps()] == [
        "start", "left", "right", "both", "fan", "sq", "gather", "decide", "big", "end",
    ]  # fmt: skip

    sq = latest["sq"]
    assert [t.id for t in sq.tasks()] == [str(i) for i in range(10)]
    task = sq["3"]
    assert task.pathspec == f"Squares/{latest.id}/sq/3"
    assert task.status == "succeeded"
    assert task["square"].data == 16 == task.data.square
    assert task["square"].type == "u64"
    assert latest["gather"].task.data.total == 385
    assert latest.data.verdict == "385 is big"
    assert latest["both"].task.data.note == "from the left"
    xs = latest["start"].task.data.xs
    assert isinstance(xs, np.ndarray) and xs.dtype == np.uint64
    assert xs.tolist() == list(range(1, 11))
    assert "gathered 10 squares" in latest["gather"].task.logs
    assert task.metadata["spec"]["frames"][0]["index"] == 3


def test_the_python_values_equal_what_the_rust_cli_prints(squares):
    flow = Flow("Squares", datastore=squares)
    run = flow.latest_run
    for step in run:
        for task in step:
            for artifact in task:
                printed = example(
                    "squares", squares, "dump", f"{task.pathspec.split('/', 1)[1]}",
                    "--artifact", artifact.name, "--json",
                )  # fmt: skip
                expected = json.loads(printed)
                value = artifact.data
                if isinstance(value, np.ndarray):
                    value = value.tolist()
                assert value == expected, f"{artifact!r}"


def test_what_is_not_there_is_named(squares):
    flow = Flow("Squares", datastore=squares)
    run = flow.latest_run
    with pytest.raises(NoSuchRun, match="has no run 20200101T000000000Z-00000000"):
        flow["20200101T000000000Z-00000000"]
    with pytest.raises(NoSuchStep, match="has no task of step sqq; its steps are start, left"):
        run["sqq"]
    with pytest.raises(NoSuchTask, match="has no task 10"):
        run["sq"]["10"]
    with pytest.raises(NoSuchTask, match="has 10 tasks; name one"):
        run["sq"].task
    with pytest.raises(NoSuchArtifact, match="has no artifact squares; it has xs, square"):
        run["sq"]["0"]["squares"]
    with pytest.raises(AttributeError, match="has no artifact nope"):
        run["sq"]["0"].data.nope
    with pytest.raises(ValueError, match="is not valid"):
        run["../../etc"]
    with pytest.raises(NoSuchRun, match="has no runs"):
        Flow("Nobody", datastore=squares).latest_run
    assert [f.name for f in flows(squares)] == ["Squares"]


def test_a_damaged_or_missing_blob_is_an_error_naming_run_step_task_and_artifact(squares, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(squares, copy)
    run = Flow("Squares", datastore=str(copy)).latest_run
    artifact = run["start"].task["xs"]
    blob = copy / "blobs" / artifact.sha[:2] / artifact.sha
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    where = f"artifact xs of task Squares/{run.id}/start/0 (run {run.id}, step start, task 0)"
    with pytest.raises(DamagedArtifact, match=re.escape(where) + ": its blob does not hash to"):
        artifact.data
    blob.write_bytes(bytes(data[:-1]))
    with pytest.raises(DamagedArtifact, match="has 10 bytes, not the 11 recorded|more than the 11"):
        artifact.data
    blob.unlink()
    with pytest.raises(DamagedArtifact, match="is missing"):
        artifact.data


def test_a_datastore_that_is_not_there_is_named(tmp_path):
    from blooming_flowers import DatastoreError

    with pytest.raises(DatastoreError, match="there is no datastore at"):
        Flow("Squares", datastore=str(tmp_path / "nowhere"))


def test_runs_compare_in_a_dataframe(squares):
    frame = Flow("Squares", datastore=squares).runs_frame()
    assert list(frame["status"]) == ["succeeded", "succeeded"]
    assert list(frame["total"]) == [385, 385]
    assert list(frame["verdict"]) == ["385 is big", "385 is big"]
    assert "xs" not in frame.columns, "vectors are not cells"
    assert list(frame["tags"]) == ["", "first"]


def test_a_foreach_of_300_and_its_join(fanout):
    run = Flow("Fanout", datastore=fanout).latest_successful_run
    body = run["body"]
    tasks = body.tasks()
    assert len(tasks) == 300
    assert [t.id for t in tasks[:12]] == [str(i) for i in range(12)], "numeric order"
    assert body["299"].data.y == 300
    assert run["join"].task.data.total == sum(range(1, 301))
    assert run.params == {"items": 300}
    frame = Flow("Fanout", datastore=fanout).runs_frame()
    assert frame["param.items"].tolist() == [300]


def test_large_bytes_and_floats_come_out_as_numpy_arrays(big_field):
    run = Flow("BigField", datastore=big_field).latest_run
    data = run["start"].task.data.data
    assert isinstance(data, np.ndarray) and data.dtype == np.uint8
    assert data.size == 9 << 20
    assert np.array_equal(data[:600], np.arange(600) % 251)
    assert not data.flags.writeable, "a view of the blob, not a copy"
    floats = run["start"].task.data.floats
    assert floats.dtype == np.float32 and floats.size == (9 << 20) // 4
    i = np.arange(floats.size)
    assert np.array_equal(floats, (i % 1000).astype(np.float32) * np.float32(0.001) - np.float32(0.5))
    assert run.data.checksum == int(data.astype(np.uint64).sum())


def test_the_burn_example_reads_its_losses_and_settings(train_burn):
    flow = Flow("TrainBurn", datastore=train_burn)
    run = flow.latest_successful_run
    train = run["train"].tasks()
    assert len(train) == len(run["start"].task.data.learning_rates)
    curve = train[0].data.loss_curve
    assert curve.dtype == np.float32 and curve.shape == (20,)
    printed = example(
        "train_burn", train_burn, "dump", f"{run.id}/train/0", "--artifact", "loss_curve", "--json"
    )
    assert curve.tolist() == [np.float32(v) for v in json.loads(printed)], "bit for bit"
    settings = run["start"].task.data.settings
    assert isinstance(settings, Struct) and settings.epochs == 20
    assert run.params["epochs"] == 20


def test_examples_dir_holds_the_binaries():
    assert (examples_dir() / "squares").is_file()
    subprocess.run([str(examples_dir() / "squares"), "--help"], check=True, capture_output=True)


def test_a_damaged_large_blob_is_refused_too(big_field, tmp_path):
    # Large blobs are mapped rather than read: the same checks hold.
    copy = tmp_path / "copy"
    shutil.copytree(big_field, copy)
    artifact = Flow("BigField", datastore=str(copy)).latest_run["start"].task["floats"]
    assert artifact.size > 1 << 20
    blob = copy / "blobs" / artifact.sha[:2] / artifact.sha
    with open(blob, "r+b") as f:
        f.seek(artifact.size // 2)
        byte = f.read(1)[0]
        f.seek(artifact.size // 2)
        f.write(bytes([byte ^ 0xFF]))
    with pytest.raises(DamagedArtifact, match="does not hash to"):
        artifact.data
    with open(blob, "r+b") as f:
        f.truncate(artifact.size - 1)
    with pytest.raises(DamagedArtifact, match=f"has {artifact.size - 1} bytes, not the"):
        artifact.data
