"""Formal properties of the Phantom core (``rtl.phantom.core``); see rtl/common/formal.py
for how a property is built and docs/formal.md for the results.

Configuration (small, for the solver): 2 threads, 4-position chunks, 2 packed values,
a window of 2 chunks, 1 lane. Any chunk stream (masks and counts unconstrained, so
also inconsistent ones), any back-pressure.

``phantom.o_hold``
    the stream rule on ``o``; k-induction.
``phantom.threads``
    never more than T products in a cycle: ``stat_products`` grows by at most T per
    cycle (ports), and the positions the T threads take (``r0 & ~rT``, white box) are
    at most T, the lowest (oldest) useful positions of the window, and as many as
    min(T, useful positions left) (no thread idles while work is eligible); k-induction.
``phantom.once``
    each set bit of the AND mask is issued exactly once: the useful positions held
    in the window (set bits of ``rem`` of the valid slots) change only by the
    accepted chunks' ``wmask & amask`` coming in and the issued positions going out,
    and ``stat_products`` counts exactly the issued ones (a conservation law: nothing
    leaves unissued, nothing is issued twice); the window's valid slots form a
    prefix (white box: the inductive strengthening); k-induction.
"""

from __future__ import annotations

from dataclasses import asdict

from amaranth.hdl import Mux, Signal

from rtl.phantom.config import PhantomConfig
from rtl.phantom.core import PhantomCore
from rtl.common.formal import FormalTop, Property, StreamHoldTop, elaborated

CONFIG = PhantomConfig(threads=2, chunk=4, values=2, window=2, lanes=1)


def popcount(value) -> object:
    return sum(value[k] for k in range(len(value)))


class PhantomTop(FormalTop):
    def __init__(self, check: str, config: PhantomConfig = CONFIG):
        super().__init__()
        if config.lanes != 1:
            raise ValueError(f"the Phantom properties are written for 1 lane, not {config.lanes}")
        self.check, self.cfg = check, config
        self.dut = PhantomCore(config)
        d = self.dut
        self.free(d.i.valid, d.i.payload, d.o.ready, d.zero_point, d.act_min, d.act_max)

    def properties(self, m):
        cfg, d = self.cfg, self.dut
        frag, g = elaborated(d)
        m.submodules.dut = frag
        self.hold_static(m, d.zero_point, d.act_min, d.act_max)
        T, L = cfg.threads, cfg.window
        go = ~g["stall"]
        r0, rT = g["r0"], g[f"r{T}"]
        taken = Signal(len(r0), name="taken")
        m.d.comb += taken.eq(r0 & ~rT)
        n_taken = Signal(range(len(r0) + 1), name="n_taken")
        m.d.comb += n_taken.eq(popcount(taken))
        products = self.past(m, d.stat_products, name="past_products")
        issued = self.past(m, Mux(go, n_taken, 0), name="past_issued")
        if self.check == "threads":
            self.assert_(m, n_taken <= T, "more than T positions taken in a cycle")
            with m.If(self.started):
                self.assert_(m, (d.stat_products - products)[:32] <= T, "more than T products counted in a cycle")
            # the taken positions are the lowest set bits of r0: nothing set in r0 below
            # the highest taken position is left
            rest = Signal(len(r0), name="left_below")
            hi = 0
            for k in range(len(r0)):
                hi = Mux(taken[k], k, hi)
            m.d.comb += rest.eq(rT & ((1 << hi) - 1))
            self.assert_(m, rest == 0, "a useful position left behind a younger one")
            self.assert_(m, n_taken == Mux(popcount(r0) < T, popcount(r0), T), "a thread idle while work waits")
            return
        total = Signal(range(L * cfg.chunk + 1), name="held")
        m.d.comb += total.eq(sum(Mux(g[f"valid{s}"], popcount(g[f"rem{s}"]), 0) for s in range(L)))
        word = d.i.payload
        incoming = Mux(d.i.valid & d.i.ready, popcount(word.wmask & word.amask), 0)
        expect = self.past(m, total - Mux(go, n_taken, 0) + incoming, name="expect_held")
        # strengthening: the window's valid slots are a prefix (slot 0 the oldest)
        for s in range(L - 1):
            self.assert_(m, g[f"valid{s}"] | ~g[f"valid{s + 1}"], "a hole in the window")
        with m.If(self.started):
            self.assert_(m, total == expect, "useful positions appeared or vanished unissued")
            self.assert_(m, (d.stat_products - products)[:32] == issued, "stat_products differs from the issued count")


PROPERTIES = [
    Property("phantom.o_hold", "phantom", "o: valid & ~ready holds valid and payload to the next cycle (any "
             "chunks, any back-pressure)", lambda: StreamHoldTop(lambda: PhantomCore(CONFIG)), "prove", 2,
             asdict(CONFIG)),
    Property("phantom.threads", "phantom", "at most T products per cycle (stat_products and the positions "
             "taken); the T taken are the oldest useful positions, min(T, left) of them",
             lambda: PhantomTop("threads"), "prove", 2, asdict(CONFIG)),
    Property("phantom.once", "phantom", "each set bit of wmask & amask issued exactly once: held useful "
             "positions change only by accepted chunks in and issued products out; stat_products counts them",
             lambda: PhantomTop("once"), "prove", 2, asdict(CONFIG)),
]
