"""The Metaflow flow of the README's Python table: the same 100 MiB of bytes and 100 MiB of
float32 as ``big_field --mib 100 --f32-mib 100``. Then ``metaflow_compare.py`` times the loads.

    python3 -m venv mf && mf/bin/pip install metaflow numpy
    USERNAME=bench mf/bin/python python/bench/metaflow_bigflow.py run
    USERNAME=bench mf/bin/python python/bench/metaflow_compare.py

(Metaflow keeps its datastore in ``.metaflow`` of the working directory: run both from the same
one.)
"""

import numpy as np
from metaflow import FlowSpec, step


class BigFlow(FlowSpec):
    @step
    def start(self):
        self.data = (np.arange(100 << 20, dtype=np.uint64) % 251).astype(np.uint8).tobytes()
        i = np.arange((100 << 20) // 4)
        self.floats = (i % 1000).astype(np.float32) * np.float32(0.001) - np.float32(0.5)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BigFlow()
