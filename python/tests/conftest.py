"""Datastores written by the Rust examples, in this test session: what the reader reads is what
the flows really store.

The example binaries come from ``$BLOOMING_EXAMPLES_DIR`` (default: ``target/debug/examples``
of the repository), built before by ``scripts/test-all`` (``cargo build --examples``, and
``--features burn`` for ``train_burn``). A missing binary fails the tests that need it: nothing
is skipped.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def examples_dir() -> Path:
    return Path(os.environ.get("BLOOMING_EXAMPLES_DIR", REPO / "target" / "debug" / "examples"))


def example(name: str, datastore: str, *args: str) -> str:
    """Runs example ``name`` with ``--datastore datastore``; its standard output."""
    binary = examples_dir() / name
    if not binary.is_file():
        pytest.fail(
            f"{binary} is missing: build the examples first "
            f"(cargo build --examples; --features burn for train_burn)"
        )
    done = subprocess.run(
        [str(binary), "--datastore", datastore, *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.fail(f"{name} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def run_id_of(output: str) -> str:
    """The id in the `Run <id> of …` line a run prints."""
    for line in output.splitlines():
        if line.startswith("Run "):
            return line.split()[1]
    raise AssertionError(f"no run id in:\n{output}")


@pytest.fixture(scope="session")
def squares(tmp_path_factory) -> str:
    """Two runs of the squares example, the first tagged ``first``."""
    datastore = str(tmp_path_factory.mktemp("squares"))
    first = run_id_of(example("squares", datastore, "run", "--tag", "first"))
    example("squares", datastore, "run")
    assert first
    return datastore


@pytest.fixture(scope="session")
def fanout(tmp_path_factory) -> str:
    datastore = str(tmp_path_factory.mktemp("fanout"))
    example("fanout", datastore, "run", "--items", "300")
    return datastore


@pytest.fixture(scope="session")
def big_field(tmp_path_factory) -> str:
    datastore = str(tmp_path_factory.mktemp("big_field"))
    example("big_field", datastore, "run", "--mib", "9", "--f32-mib", "9")
    return datastore


@pytest.fixture(scope="session")
def train_burn(tmp_path_factory) -> str:
    datastore = str(tmp_path_factory.mktemp("train_burn"))
    example("train_burn", datastore, "run", "--epochs", "20")
    return datastore


@pytest.fixture(scope="session")
def s3_base() -> str:
    """The bucket of the S3 server (``scripts/services``), with a prefix of this session's."""
    base = os.environ.get("BLOOMING_TEST_S3", "")
    if not base.startswith("s3://"):
        pytest.fail(
            "BLOOMING_TEST_S3 is not set: the S3 tests need the server of scripts/services; "
            "run them as `scripts/services exec -- pytest python/tests/test_s3.py`"
        )
    return f"{base.rstrip('/')}/python-{uuid.uuid4().hex[:12]}"
