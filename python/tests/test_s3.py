"""The reader on the S3 server of ``scripts/services`` (SeaweedFS), over runs the Rust examples
store there: run inside the services' namespace, as ``scripts/test-all`` does
(``scripts/services exec -- pytest python/tests/test_s3.py``). Fails without
``BLOOMING_TEST_S3``: never skipped silently."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pytest

from blooming_flowers import DamagedArtifact, Flow, NoSuchRun

from .conftest import example


def test_squares_on_s3_reads_as_locally(s3_base):
    datastore = f"{s3_base}/squares"
    example("squares", datastore, "run", "--tag", "first")
    example("squares", datastore, "run")
    flow = Flow("Squares", datastore=datastore)
    runs = flow.runs()
    assert len(runs) == 2 and [r.id for r in flow.runs("first")] == [runs[1].id]
    run = flow.latest_successful_run
    assert run["sq"]["3"].data.square == 16
    assert run["gather"].task.data.total == 385
    assert [t.id for t in run["sq"].tasks()] == [str(i) for i in range(10)]
    assert "gathered 10 squares" in run["gather"].task.logs
    assert list(flow.runs_frame()["total"]) == [385, 385]
    with pytest.raises(NoSuchRun):
        flow["20200101T000000000Z-00000000"]

    # A blob damaged in the bucket is named with its run, step, task and artifact.
    artifact = run["start"].task["xs"]
    bucket, _, prefix = datastore[len("s3://") :].partition("/")
    key = f"{prefix}/blobs/{artifact.sha[:2]}/{artifact.sha}"
    client = boto3.client("s3")
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=bytes([body[0] ^ 0xFF]) + body[1:])
    with pytest.raises(DamagedArtifact, match=f"artifact xs of task Squares/{run.id}/start/0"):
        artifact.data


def test_the_burn_example_on_s3(s3_base):
    datastore = f"{s3_base}/train_burn"
    example("train_burn", datastore, "run", "--epochs", "12")
    run = Flow("TrainBurn", datastore=datastore).latest_successful_run
    curve = run["train"]["0"].data.loss_curve
    printed = example(
        "train_burn", datastore, "dump", f"{run.id}/train/0", "--artifact", "loss_curve", "--json"
    )
    assert curve.dtype == np.float32
    assert curve.tolist() == [np.float32(v) for v in json.loads(printed)]
