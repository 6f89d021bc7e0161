"""Read blooming-flowers runs from Python: ``Flow("Squares", datastore=".blooming")``.

Artifacts are MessagePack, stored under their BLAKE3 hash; every read checks the hash before
decoding, and nothing stored is ever executed.
"""

from .client import (
    DamagedArtifact,
    DamagedRecord,
    DataArtifact,
    Flow,
    FlowError,
    NoSuchArtifact,
    NoSuchRun,
    NoSuchStep,
    NoSuchTask,
    Run,
    Step,
    Task,
    TaskData,
    flows,
)
from .storage import DatastoreError
from .values import Struct, ValueDecodeError, decode

__all__ = [
    "DamagedArtifact",
    "DamagedRecord",
    "DataArtifact",
    "DatastoreError",
    "Flow",
    "FlowError",
    "NoSuchArtifact",
    "NoSuchRun",
    "NoSuchStep",
    "NoSuchTask",
    "Run",
    "Step",
    "Struct",
    "Task",
    "TaskData",
    "ValueDecodeError",
    "decode",
    "flows",
]
