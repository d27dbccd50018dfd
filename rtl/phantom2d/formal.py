"""Formal properties of the Phantom-2D mesh (``rtl.phantom2d.mesh``); see
rtl/common/formal.py for how a property is built and docs/formal.md for the results.

Configuration (small, for the solver): a 1 x 2 mesh of cores with 2 threads,
4-position chunks, 2 packed values, a window of 2 chunks, 2-deep queues.
"""

from __future__ import annotations

from dataclasses import asdict

from rtl.phantom2d.config import Phantom2DConfig
from rtl.phantom2d.mesh import PhantomMesh
from rtl.common.formal import Property, StreamHoldTop

CONFIG = Phantom2DConfig(rows=1, cols=2, threads=2, chunk=4, values=2, window=2, fifo=2)

PROPERTIES = [
    Property("phantom2d.o_hold", "phantom2d", "o: valid & ~ready holds valid and payload to the next cycle "
             "(any words, any back-pressure)", lambda: StreamHoldTop(lambda: PhantomMesh(CONFIG)), "bmc", 20,
             asdict(CONFIG)),
]
