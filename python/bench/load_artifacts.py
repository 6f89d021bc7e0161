"""Loading a 100 MiB ``serde_bytes`` artifact and a 100 MiB ``Vec<f32>`` artifact into numpy
arrays, warm cache: the figures of the README's "Python reader" table.

    python python/bench/load_artifacts.py [DATASTORE]

Without DATASTORE, it writes one first with the big_field example
(``target/release/examples/big_field``, else ``target/debug/examples/big_field``:
``run --mib 100 --f32-mib 100``). Each load is timed five times after one warm-up; it prints
the median and the fastest. A load reads the blob, checks its size and BLAKE3 hash, then
decodes it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from blooming_flowers import Flow

REPO = Path(__file__).resolve().parents[2]


def make_datastore(directory: str) -> str:
    for profile in ("release", "debug"):
        binary = REPO / "target" / profile / "examples" / "big_field"
        if binary.is_file():
            break
    else:
        sys.exit("build the example first: cargo build --release --example big_field")
    datastore = f"{directory}/datastore"
    subprocess.run(
        [str(binary), "--datastore", datastore, "run", "--mib", "100", "--f32-mib", "100"],
        check=True,
        capture_output=True,
    )
    return datastore


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        datastore = sys.argv[1] if len(sys.argv) > 1 else make_datastore(directory)
        task = Flow("BigField", datastore=datastore).latest_run["start"].task
        for name in ("data", "floats"):
            artifact = task[name]
            value = artifact.data  # warm-up: the page cache holds the blob
            times = []
            for _ in range(5):
                started = time.perf_counter()
                value = artifact.data
                times.append(time.perf_counter() - started)
            print(
                f"{name} ({artifact.type}, {artifact.size / 2**20:.1f} MiB blob): "
                f"median {statistics.median(times):.3f} s, fastest {min(times):.3f} s "
                f"-> numpy {value.dtype} of {value.size}"
            )


if __name__ == "__main__":
    main()
