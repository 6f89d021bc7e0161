"""Metaflow's client loading the artifacts of ``metaflow_bigflow.py`` (run it first, from the
same directory): median of 5 after a warm-up, as ``load_artifacts.py`` times this package."""

import statistics
import time

from metaflow import Flow, namespace

namespace(None)
task = Flow("BigFlow").latest_run["start"].task
for name in ("data", "floats"):
    value = task[name].data
    times = []
    for _ in range(5):
        started = time.perf_counter()
        value = task[name].data
        times.append(time.perf_counter() - started)
    print(
        f"metaflow {name}: median {statistics.median(times):.3f} s, "
        f"fastest {min(times):.3f} s, {type(value).__name__} of {len(value)}"
    )
