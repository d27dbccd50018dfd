"""Formal properties of the Phantom-2D mesh (``rtl.phantom2d.mesh``); see
rtl/common/formal.py for how a property is built and docs/formal.md for the results.

Configuration (small, for the solver): a 1 x 2 mesh of cores with 2 threads,
4-position chunks, 2 packed values, a window of 2 chunks, 2-deep queues. Any words,
any back-pressure.

``phantom2d.o_hold``
    the stream rule on ``o``; k-induction, with every core's own stream rule on its
    ``o`` asserted as the strengthening (a lane offered and not taken is a core's
    output offered and not taken, which that core holds).
``phantom2d.count``
    in/out counting (:func:`rtl.common.formal.stream_count_checks`): each chunk a core
    takes from an accepted word (row valid, ``use``) with ``last`` owes one output, and
    exactly that many valid lanes leave ``o``. Held: per core, the closing chunks in its
    queue (a monitor: written minus taken by the core) plus what the core holds
    (:func:`rtl.phantom.formal.core_held`). Bounded (bmc): the queues are
    ``amaranth.lib.fifo.SyncFIFO`` memories, whose stored ``last`` bits the wrapper
    cannot read, so an induction step may start from a queue whose contents disagree
    with the monitor; from reset the monitor is exact.
"""

from __future__ import annotations

from dataclasses import asdict

from amaranth.hdl import Cat, Mux, Signal

from rtl.common.formal import (EngineTop, Property, popcount, stream_count_checks,
                               stream_out_checks)
from rtl.phantom.config import ISSUE_STAGES
from rtl.phantom.formal import core_held
from rtl.phantom2d.config import Phantom2DConfig
from rtl.phantom2d.mesh import PhantomMesh

CONFIG = Phantom2DConfig(rows=1, cols=2, threads=2, chunk=4, values=2, window=2, fifo=2)
COUNT_DEPTH = 15


class MeshTop(EngineTop):
    """The mesh with its inputs free: ``check`` "hold" (stream rule on ``o`` and, as the
    strengthening, on every core's ``o``) or "count" (in/out counting).
    ``component`` replaces the mesh (a broken design, for the tests)."""

    def __init__(self, check: str, config: Phantom2DConfig = CONFIG, component=None):
        super().__init__(component if component is not None else PhantomMesh(config))
        self.check, self.cfg = check, config

    def properties(self, m):
        cfg, d = self.cfg, self.dut
        g = self.enter(m)
        cores = [(r, c) for r in range(cfg.rows) for c in range(cfg.cols)]
        if self.check == "hold":
            stream_out_checks(self, m, d.o)
            for r, c in cores:
                stream_out_checks(self, m, g[f"core_{r}_{c}"].o, name=f"core_{r}_{c}.o")
            return
        word = d.i.payload
        taken = d.i.valid & d.i.ready
        incoming, held = 0, 0
        for r, c in cores:
            p = f"core_{r}_{c}."
            wrote = taken & getattr(word, f"r{r}_valid") & getattr(word, f"r{r}c{c}_use") \
                & getattr(word, f"r{r}c{c}_last")
            core_i = g[f"core_{r}_{c}"].i
            fed = core_i.valid & core_i.ready & core_i.payload.last
            queued = Signal(range(cfg.fifo + 2), name=f"queued_lasts_{r}_{c}")  # closing chunks in the queue
            m.d.sync += queued.eq(queued + wrote - fed)
            incoming = incoming + wrote
            held = held + queued + core_held(self, m, g, cfg.core, prefix=p)
        lanes = popcount(Cat(getattr(d.o.payload, f"lane{j}_valid") for j in range(len(cores))))
        per_core = cfg.fifo + cfg.window + ISSUE_STAGES + 1 + cfg.core.requant.latency
        stream_count_checks(self, m, d.o, incoming=incoming, held=held, capacity=len(cores) * per_core,
                            max_incoming=len(cores), outgoing=Mux(d.o.valid & d.o.ready, lanes, 0))


PROPERTIES = [
    Property("phantom2d.o_hold", "phantom2d", "o: valid & ~ready holds valid and payload to the next cycle "
             "(any words, any back-pressure; every core's stream rule as strengthening)",
             lambda: MeshTop("hold"), "prove", 2, asdict(CONFIG)),
    Property("phantom2d.count", "phantom2d", "each chunk with last a core takes owes one output and exactly that "
             "many valid lanes leave o (in/out counting; held = closing chunks queued + each core's), any words, "
             "any back-pressure; bounded: the queues' stored last bits are not visible to an induction step",
             lambda: MeshTop("count"), "bmc", COUNT_DEPTH, asdict(CONFIG)),
]
