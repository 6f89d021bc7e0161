"""Flows, runs, steps, tasks and artifacts of a datastore, as Metaflow's client has them.

Everything is read on demand and every artifact's blob is checked (its size and BLAKE3 hash)
before it is decoded: a damaged blob raises :class:`DamagedArtifact` naming the run, step, task
and artifact.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from typing import Any, Iterator

import blake3

from . import values
from .storage import MAX_RECORD_SIZE, DatastoreError, NotFound, check_segment, open_storage


class FlowError(Exception):
    """Something asked for that is not in the datastore, or cannot be read."""


class NoSuchRun(FlowError, KeyError):
    pass


class NoSuchStep(FlowError, KeyError):
    pass


class NoSuchTask(FlowError, KeyError):
    pass


class NoSuchArtifact(FlowError, KeyError):
    pass


class DamagedArtifact(FlowError):
    """An artifact whose blob is missing, of another size, does not hash to its name, or does not
    decode; the message names the run, step, task and artifact."""


class DamagedRecord(FlowError):
    """A run record, done marker or pointer that cannot be read as one."""

    def __str__(self) -> str:  # KeyError-style quoting is not wanted here
        return str(self.args[0]) if self.args else ""


def _json(storage, key: str, what: str) -> Any:
    data = storage.get(key, limit=MAX_RECORD_SIZE)
    try:
        return json.loads(data)
    except ValueError as e:
        raise DamagedRecord(f"{what} at {key} is not readable: {e}") from None


def _task_order(task_id: str):
    """Task ids in the order the Rust side lists them: `2` before `10`, `i2` before `i10`."""
    key = []
    for part in task_id.split("-"):
        digits = part.lstrip("i")
        key.append((0, int(digits), part) if digits.isdigit() else (1, 0, part))
    return key


def flows(datastore: Any = None) -> list["Flow"]:
    """Every flow with runs in ``datastore`` (as for :class:`Flow`), by name."""
    storage = open_storage(datastore)
    _, names = storage.children("flows")
    return [Flow(name, datastore=storage) for name in names]


class Flow:
    """A flow's runs in a datastore: ``Flow("Squares", datastore="s3://bucket/flows")``.

    ``datastore`` defaults to ``$BLOOMING_DATASTORE``, else ``./.blooming``, as the flow
    binaries do.
    """

    def __init__(self, name: str, datastore: Any = None):
        self.name = check_segment(name, "flow name")
        # An opened storage (from `flows()`) is taken as it is.
        self._storage = datastore if hasattr(datastore, "children") else open_storage(datastore)

    def __repr__(self) -> str:
        return f"Flow({self.name!r}, datastore={self._storage.url!r})"

    def _prefix(self) -> str:
        return f"flows/{self.name}"

    def __getitem__(self, run_id: str) -> "Run":
        check_segment(run_id, "run id")
        key = f"{self._prefix()}/runs/{run_id}/run.json"
        try:
            record = _json(self._storage, key, "the run record")
        except NotFound:
            raise NoSuchRun(f"flow {self.name} has no run {run_id}") from None
        if record.get("deleting"):
            raise NoSuchRun(
                f"run {run_id} of flow {self.name} is being deleted by a garbage collection"
            )
        return Run(self, run_id, record)

    def runs(self, *tags: str) -> list["Run"]:
        """Every run (with all of ``tags``), newest first. Runs being deleted are left out."""
        _, ids = self._storage.children(f"{self._prefix()}/runs")
        runs = []
        for run_id in ids:
            try:
                run = self[run_id]
            except NoSuchRun:
                continue
            if all(tag in run.tags for tag in tags):
                runs.append(run)
        runs.sort(key=lambda r: (r.started, r.id), reverse=True)
        return runs

    def __iter__(self) -> Iterator["Run"]:
        return iter(self.runs())

    def _pointer(self, which: str) -> "Run | None":
        try:
            text = self._storage.get(f"{self._prefix()}/latest/{which}", limit=1024)
        except NotFound:
            return None
        run_id = text.decode("utf-8", "replace").strip()
        try:
            return self[run_id]
        except (NoSuchRun, ValueError):
            return None

    @property
    def latest_run(self) -> "Run":
        """The run started last, whatever its status."""
        run = self._pointer("any")
        if run is None:
            raise NoSuchRun(f"flow {self.name} has no runs")
        return run

    @property
    def latest_successful_run(self) -> "Run":
        """The run started last of those that succeeded."""
        run = self._pointer("succeeded")
        if run is None:
            raise NoSuchRun(f"flow {self.name} has no successful run")
        return run

    def runs_frame(self, *tags: str, step: str = "end"):
        """A pandas DataFrame of the runs (with all of ``tags``), newest first: one row per run,
        its id, status, times, tags, every parameter (``param.NAME``) and every artifact of its
        ``step`` task that is a number, a string or a bool, to compare runs side by side."""
        import pandas as pd  # noqa: PLC0415 - only this method needs it

        rows = []
        for run in self.runs(*tags):
            row: dict[str, Any] = {
                "run_id": run.id,
                "status": run.status,
                "started": pd.Timestamp(run.started),
                "finished": pd.Timestamp(run.finished) if run.finished else pd.NaT,
                "tags": ",".join(run.tags),
            }
            params = run.params if isinstance(run.params, dict) else {}
            for name, value in _flatten(params):
                row[f"param.{name}"] = value
            try:
                task = run[step].task
            except (NoSuchStep, NoSuchTask):
                task = None
            if task is not None and task.finished:
                for artifact in task:
                    if artifact.type in _SCALARS:
                        row[artifact.name] = artifact.data
            rows.append(row)
        return pd.DataFrame(rows)


# Rust types whose values a DataFrame cell holds as they are.
_SCALARS = {
    "bool", "char", "f32", "f64", "i8", "i16", "i32", "i64", "isize",
    "u8", "u16", "u32", "u64", "usize", "alloc::string::String",
}  # fmt: skip


def _flatten(params: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in params.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{name}.")
        elif isinstance(value, (int, float, str, bool)) or value is None:
            yield f"{prefix}{name}", value


class Run:
    """One run of a flow: ``flow["20261207T…-1a2b3c4d"]``."""

    def __init__(self, flow: Flow, run_id: str, record: dict):
        self.flow = flow
        self.id = run_id
        self._record = record

    def __repr__(self) -> str:
        return f"Run('{self.pathspec}', {self.status})"

    @property
    def pathspec(self) -> str:
        return f"{self.flow.name}/{self.id}"

    @property
    def status(self) -> str:
        """``running``, ``succeeded``, ``failed`` or ``stopped``."""
        return self._record.get("status", "")

    @property
    def successful(self) -> bool:
        return self.status == "succeeded"

    @property
    def finished(self) -> bool | str:
        """When it finished (RFC 3339), or ``None`` while it runs."""
        return self._record.get("finished")

    @property
    def started(self) -> str:
        return self._record.get("started", "")

    @property
    def tags(self) -> list[str]:
        return list(self._record.get("tags", []))

    @property
    def params(self) -> Any:
        """The run's parameters, as given on its command line (a dict), or ``None``."""
        return self._record.get("params")

    @property
    def graph(self) -> list[dict]:
        """The run's graph as recorded: one dict per step (``name``, ``kind``, ``next``, …)."""
        return list(self._record.get("graph", {}).get("steps", []))

    @property
    def record(self) -> dict:
        """The whole run record (``run.json``)."""
        return dict(self._record)

    def _prefix(self) -> str:
        return f"{self.flow._prefix()}/runs/{self.id}"

    def steps(self) -> list["Step"]:
        """The steps that have at least one task, in the graph's order."""
        _, names = self.flow._storage.children(f"{self._prefix()}/steps")
        order = {step["name"]: i for i, step in enumerate(self.graph)}
        names.sort(key=lambda n: (order.get(n, len(order)), n))
        return [Step(self, name) for name in names]

    def __iter__(self) -> Iterator["Step"]:
        return iter(self.steps())

    def __getitem__(self, step: str) -> "Step":
        check_segment(step, "step name")
        _, names = self.flow._storage.children(f"{self._prefix()}/steps")
        if step not in names:
            known = [s["name"] for s in self.graph]
            raise NoSuchStep(
                f"run {self.pathspec} has no task of step {step}"
                + (f"; its steps are {', '.join(known)}" if known else "")
            )
        return Step(self, step)

    @property
    def end_task(self) -> "Task":
        return self["end"].task

    @property
    def data(self) -> "TaskData":
        """The artifacts of the ``end`` task (``run.data.total``), as Metaflow's ``Run.data``."""
        return self.end_task.data


class Step:
    """One step of a run: ``run["sq"]``."""

    def __init__(self, run: Run, name: str):
        self.run = run
        self.name = name

    def __repr__(self) -> str:
        return f"Step('{self.pathspec}')"

    @property
    def pathspec(self) -> str:
        return f"{self.run.pathspec}/{self.name}"

    def _prefix(self) -> str:
        return f"{self.run._prefix()}/steps/{self.name}"

    def tasks(self) -> list["Task"]:
        """Every task of the step, in order (`2` before `10`)."""
        _, ids = self.run.flow._storage.children(self._prefix())
        return [Task(self, task_id) for task_id in sorted(ids, key=_task_order)]

    def __iter__(self) -> Iterator["Task"]:
        return iter(self.tasks())

    def __getitem__(self, task_id: str | int) -> "Task":
        task_id = check_segment(str(task_id), "task id")
        _, ids = self.run.flow._storage.children(self._prefix())
        if task_id not in ids:
            raise NoSuchTask(f"step {self.pathspec} has no task {task_id}")
        return Task(self, task_id)

    @property
    def task(self) -> "Task":
        """The step's one task (a step outside any foreach or loop)."""
        tasks = self.tasks()
        if len(tasks) != 1:
            raise NoSuchTask(
                f"step {self.pathspec} has {len(tasks)} tasks; name one: "
                + ", ".join(t.id for t in tasks[:10])
            )
        return tasks[0]


class Task:
    """One task: ``run["sq"]["3"]``; its artifacts by name (``task["square"].data``) or as
    attributes of ``task.data``."""

    def __init__(self, step: Step, task_id: str):
        self.step = step
        self.id = task_id

    def __repr__(self) -> str:
        return f"Task('{self.pathspec}', {self.status})"

    @property
    def pathspec(self) -> str:
        return f"{self.step.pathspec}/{self.id}"

    @property
    def _storage(self):
        return self.step.run.flow._storage

    def _prefix(self) -> str:
        return f"{self.step._prefix()}/{self.id}"

    @cached_property
    def _done(self) -> dict | None:
        try:
            return _json(self._storage, f"{self._prefix()}/done.json", "the done marker")
        except NotFound:
            return None

    @property
    def finished(self) -> bool:
        """Whether the task completed (its done marker is there)."""
        return self._done is not None

    @property
    def successful(self) -> bool:
        return self.finished

    @property
    def metadata(self) -> dict:
        """What the task recorded about itself: attempts, its place in the graph, a failure."""
        if self._done is not None:
            return dict(self._done.get("metadata") or {})
        try:
            return _json(self._storage, f"{self._prefix()}/meta.json", "task metadata")
        except NotFound:
            return {}

    @property
    def status(self) -> str:
        """``succeeded``, ``caught`` (failed, its error caught: it completed), ``failed``, or
        ``running`` (also a task whose process died)."""
        if self._done is not None:
            return self.metadata.get("status", "succeeded")
        return self.metadata.get("status", "running")

    def _entries(self) -> list[dict]:
        if self._done is None:
            raise NoSuchArtifact(f"task {self.pathspec} did not complete: it has no artifacts")
        return list(self._done.get("artifacts", []))

    def artifacts(self) -> list["DataArtifact"]:
        """Every artifact, in the order of the flow's fields."""
        return [DataArtifact(self, entry) for entry in self._entries()]

    def __iter__(self) -> Iterator["DataArtifact"]:
        return iter(self.artifacts())

    def __contains__(self, name: str) -> bool:
        return self.finished and any(e.get("name") == name for e in self._entries())

    def __getitem__(self, name: str) -> "DataArtifact":
        for entry in self._entries():
            if entry.get("name") == name:
                return DataArtifact(self, entry)
        names = ", ".join(e.get("name", "?") for e in self._entries())
        raise NoSuchArtifact(f"task {self.pathspec} has no artifact {name}; it has {names}")

    @property
    def data(self) -> "TaskData":
        return TaskData(self)

    def _logs(self) -> dict[int, str]:
        objects, _ = self._storage.children(self._prefix())
        logs = {}
        for name in objects:
            match = re.fullmatch(r"attempt-(\d+)\.log", name)
            if match:
                data = self._storage.get(f"{self._prefix()}/{name}")
                logs[int(match.group(1))] = data.decode("utf-8", "replace")
        return dict(sorted(logs.items()))

    @property
    def logs(self) -> str:
        """The log of the task's last attempt ('' if it logged nothing)."""
        logs = self._logs()
        return logs[max(logs)] if logs else ""

    @property
    def attempt_logs(self) -> dict[int, str]:
        """The log of every attempt, by attempt number."""
        return self._logs()


class TaskData:
    """A task's artifacts as attributes, each read when first asked for: ``task.data.square``."""

    def __init__(self, task: Task):
        object.__setattr__(self, "_task", task)
        object.__setattr__(self, "_cache", {})

    def __getattr__(self, name: str) -> Any:
        cache = self._cache
        if name not in cache:
            try:
                cache[name] = self._task[name].data
            except NoSuchArtifact as e:
                raise AttributeError(str(e)) from None
        return cache[name]

    def __dir__(self):
        return [a.name for a in self._task.artifacts()]

    def __repr__(self) -> str:
        return f"<data of {self._task.pathspec}: {', '.join(self.__dir__())}>"


class DataArtifact:
    """One artifact of a task: its name, Rust type, blob hash and size, and ``.data``."""

    def __init__(self, task: Task, entry: dict):
        self.task = task
        self.name: str = entry.get("name", "")
        self.sha: str = entry.get("hash", "")
        self.size: int = int(entry.get("size", -1))
        self.type: str = entry.get("type", "")
        self.encoding: str = entry.get("encoding", "")

    def __repr__(self) -> str:
        return f"DataArtifact('{self.task.pathspec}/{self.name}', {self.type}, {self.size} bytes)"

    def _damaged(self, problem: str) -> DamagedArtifact:
        return DamagedArtifact(
            f"artifact {self.name} of task {self.task.pathspec} (run {self.task.step.run.id}, "
            f"step {self.task.step.name}, task {self.task.id}): {problem}"
        )

    def bytes(self):
        """The blob, checked: its size and its BLAKE3 hash are those the task recorded (a
        large local blob as a read-only memory map)."""
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha):
            raise self._damaged(f"its recorded hash {self.sha!r} is not a BLAKE3 hash")
        key = f"blobs/{self.sha[:2]}/{self.sha}"
        try:
            data = self.task._storage.get_blob(key, self.size)
        except NotFound:
            raise self._damaged(f"its blob {self.sha} is missing") from None
        except DatastoreError as e:
            raise self._damaged(f"its blob {self.sha} cannot be read: {e}") from None
        if len(data) != self.size:
            raise self._damaged(f"its blob has {len(data)} bytes, not the {self.size} recorded")
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO if len(data) > (1 << 20) else 1)
        hasher.update(data)
        if hasher.hexdigest() != self.sha:
            raise self._damaged(f"its blob does not hash to {self.sha}: it is damaged")
        return data

    @property
    def data(self) -> Any:
        """The value (see :mod:`blooming_flowers.values`): verified, then decoded; a burn model
        comes out as a :class:`blooming_flowers.models.Model` when that module is there."""
        if self.encoding != "msgpack":
            raise self._damaged(f"its encoding {self.encoding!r} is not one this package reads")
        blob = self.bytes()
        try:
            value = values.decode(blob)
        except values.ValueDecodeError as e:
            raise self._damaged(f"its value does not decode: {e}") from None
        value = values.typed(value, self.type)
        return _as_model(value)


def _as_model(value: Any) -> Any:
    try:
        from . import models  # noqa: PLC0415 - optional until the module lands
    except ImportError:
        return value
    if models.is_model_value(value):
        # The tensors are views of the record, itself a view of the blob: no copy.
        return models.model_from_value(value)
    return value
