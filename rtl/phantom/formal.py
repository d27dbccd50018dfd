"""Formal properties of the Phantom core (``rtl.phantom.core``); see rtl/common/formal.py
for how a property is built and docs/formal.md for the results.

Configuration (small, for the solver): 2 threads, 4-position chunks, 2 packed values,
a window of 2 chunks, 1 lane. Any chunk stream (masks and counts unconstrained, so
also inconsistent ones), any back-pressure.

The scheduler ranks threads from per-slot counts, so the properties that read it
(threads, once, offsets) assert :func:`window_invariants` as strengthening: per valid
slot ``uoff`` = prefix popcounts of ``useful``, ``issued`` + ``ucnt`` = popcount(useful),
``elig`` (registered a cycle ahead) = its function of the window, and ``n_iss`` <= T.

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
    and ``stat_products`` counts exactly the issued ones, a cycle later (a conservation law: nothing
    leaves unissued, nothing is issued twice); the window's valid slots form a
    prefix (white box: the inductive strengthening); k-induction.
``phantom.count``
    in/out counting (:func:`rtl.common.formal.stream_count_checks`): each accepted chunk
    with ``last`` owes one output, and exactly that many valid lanes leave ``o``, under
    any chunks and back-pressure. Strengthening (white box): the outputs owed equal the
    window's closing chunks (``valid & last``), the issue pipeline's closes
    (``n_cl1``, ``n_cl2``), the output register and the requantizer's valid bits whose lane bit is set (a valid stage's lane bit is set,
    ``out_valid`` implies ``out_n >= 1``, the window's valid slots form a prefix:
    :func:`core_held`); k-induction.
``phantom.offsets``
    packed-value offsets stay inside the packed counts when the masks are consistent:
    assuming every accepted chunk has ``popcount(wmask) == wcnt <= values`` and
    ``popcount(amask) == acnt <= values``, every thread that issues reads its weight
    and activation at offsets (the full prefix-popcount fields, before the core keeps
    their low bits) below the ``wcnt`` and ``acnt`` of the chunk its position belongs
    to. The counts are not stored by the core: the wrapper keeps them in a shadow of the
    window, moved as the window moves (``d_eff`` slots out, the new chunk at
    ``n_after``). Strengthening: in every valid slot each useful position not yet
    issued has offsets below the slot's counts (asserted only with the assumption);
    k-induction. Without the assumption (inconsistent masks, which the core flags in
    ``stat_errors``) it fails.
"""

from __future__ import annotations

from dataclasses import asdict

from amaranth.hdl import Cat, Mux, Signal

from rtl.phantom.config import ISSUE_STAGES, PhantomConfig
from rtl.phantom.core import PhantomCore
from rtl.common.formal import EngineTop, FormalTop, Property, StreamHoldTop, stream_count_checks

CONFIG = PhantomConfig(threads=2, chunk=4, values=2, window=2, lanes=1)


def popcount(value) -> object:
    return sum(value[k] for k in range(len(value)))


def core_held(top: FormalTop, m, g: dict, cfg: PhantomConfig, prefix: str = ""):
    """The outputs a 1-lane Phantom core holds (white box, signals ``prefix + name`` of
    an elaborated design): the window's closing chunks (``valid & last``), the closes in
    the issue pipeline (``n_cl1``, ``n_cl2``), the output register and the requantizer's
    valid stages whose lane bit is set. Asserts what
    makes this count inductive: a valid requantizer stage has its lane bit, a valid
    output register has a lane, the window's valid slots form a prefix."""
    L, lat = cfg.window, cfg.requant.latency
    rq_valid = g[prefix + "rq0.valid"]
    for k in range(lat):
        with m.If(rq_valid[k]):
            top.assert_(m, g[f"{prefix}lanes_s{k}"][0], "a valid requantizer stage without its lane bit")
    with m.If(g[prefix + "out_valid"]):
        top.assert_(m, g[prefix + "out_n"] != 0, "the output register valid with no lane")
    for s in range(L - 1):
        top.assert_(m, g[f"{prefix}valid{s}"] | ~g[f"{prefix}valid{s + 1}"], "a hole in the window")
    return (sum(g[f"{prefix}valid{s}"] & g[f"{prefix}last{s}"] for s in range(L))
            + g[prefix + "n_cl1"] + g[prefix + "n_cl2"] + g[prefix + "out_valid"]
            + popcount(Cat(rq_valid[k] & g[f"{prefix}lanes_s{k}"][0] for k in range(lat))))


def window_invariants(top: FormalTop, m, g: dict, cfg: PhantomConfig, prefix: str = ""):
    """What the scheduler's registers keep about each valid slot of the window (white
    box, the inductive strengthening of the properties that read the scheduler): ``uoff``
    holds the prefix popcounts of ``useful``; ``issued`` + ``ucnt`` = popcount(useful);
    ``elig`` (registered a cycle ahead) = valid with at most ``lanes`` closing chunks
    before it; and the products counted a cycle late (``n_iss``) are at most T."""
    M, L, NL, T = cfg.chunk, cfg.window, cfg.lanes, cfg.threads
    PB = M.bit_length()
    for s in range(L):
        useful, uoff = g[f"{prefix}useful{s}"], g[f"{prefix}uoff{s}"]
        lasts_before = sum(g[f"{prefix}last{j}"] for j in range(s)) if s else 0
        top.assert_(m, g[f"{prefix}elig{s}"] == (g[f"{prefix}valid{s}"] & (lasts_before <= NL)),
                    "elig differs from its window")
        with m.If(g[f"{prefix}valid{s}"]):
            for q in range(M):
                top.assert_(m, uoff.word_select(q, PB) == popcount(useful[:q]) if q else uoff[:PB] == 0,
                            "uoff is not the prefix popcount of useful")
            top.assert_(m, g[f"{prefix}issued{s}"] + g[f"{prefix}ucnt{s}"] == popcount(useful),
                        "issued + ucnt differs from the useful count")
    top.assert_(m, g[prefix + "n_iss"] <= T, "more than T products pending for the counter")


class PhantomTop(EngineTop):
    def __init__(self, check: str, config: PhantomConfig = CONFIG, component=None, consistent: bool = True):
        super().__init__(component if component is not None else PhantomCore(config))
        if config.lanes != 1:
            raise ValueError(f"the Phantom properties are written for 1 lane, not {config.lanes}")
        self.check, self.cfg, self.consistent = check, config, consistent

    def properties(self, m):
        cfg, d = self.cfg, self.dut
        g = self.enter(m)
        T, L = cfg.threads, cfg.window
        go = ~g["stall"]
        r0, rT = g["r0"], g[f"r{T}"]
        taken = Signal(len(r0), name="taken")
        m.d.comb += taken.eq(r0 & ~rT)
        n_taken = Signal(range(len(r0) + 1), name="n_taken")
        m.d.comb += n_taken.eq(popcount(taken))
        if self.check == "count":
            self._count(m, g)
            return
        window_invariants(self, m, g, cfg)
        if self.check == "offsets":
            self._offsets(m, g)
            return
        products = self.past(m, d.stat_products, name="past_products")
        pending = self.past(m, g["n_iss"], name="past_pending")  # stat_products counts a cycle late
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
            self.assert_(m, g["n_iss"] == issued, "the pending count differs from the issued count")
            self.assert_(m, (d.stat_products - products)[:32] == pending,
                         "stat_products differs from the issued count (a cycle late)")


    def _count(self, m, g):
        d = self.dut
        held = core_held(self, m, g, self.cfg)
        stream_count_checks(self, m, d.o, incoming=d.i.valid & d.i.ready & d.i.payload.last, held=held,
                            capacity=self.cfg.window + ISSUE_STAGES + 1 + self.cfg.requant.latency,
                            outgoing=d.o.valid & d.o.ready & d.o.payload.lane0_valid)

    def _offsets(self, m, g):
        cfg, d = self.cfg, self.dut
        T, M, L, V = cfg.threads, cfg.chunk, cfg.window, cfg.values
        PB = M.bit_length()
        word = d.i.payload
        if self.consistent:
            with m.If(d.i.valid):
                self.assume(m, (popcount(word.wmask) == word.wcnt) & (word.wcnt <= V)
                            & (popcount(word.amask) == word.acnt) & (word.acnt <= V))
        # the shadow of the window's packed counts, moved as the core moves its slots
        wcnt = [Signal(range(V + 1), name=f"shadow_wcnt{s}") for s in range(L)]
        acnt = [Signal(range(V + 1), name=f"shadow_acnt{s}") for s in range(L)]
        d_eff, n_after = g["d_eff"], g["n_after"]
        with m.Switch(d_eff):
            for dd in range(L + 1):
                with m.Case(dd):
                    for s in range(L - dd):
                        m.d.sync += [wcnt[s].eq(wcnt[s + dd]), acnt[s].eq(acnt[s + dd])]
        with m.If(d.i.valid & d.i.ready):
            with m.Switch(n_after):
                for s in range(L):
                    with m.Case(s):
                        m.d.sync += [wcnt[s].eq(word.wcnt), acnt[s].eq(word.acnt)]
        woff = Cat(g[f"woff{s}"] for s in range(L))
        aoff = Cat(g[f"aoff{s}"] for s in range(L))
        for k in range(T):
            idx, slot = g[f"idx{k}"], g[f"slot{k}"]
            wc = Signal(range(V + 1), name=f"slot_wcnt{k}")
            ac = Signal(range(V + 1), name=f"slot_acnt{k}")
            for s in range(L):
                with m.If(slot == s):
                    m.d.comb += [wc.eq(wcnt[s]), ac.eq(acnt[s])]
            wo_k = Signal(PB, name=f"thread_woff{k}")
            ao_k = Signal(PB, name=f"thread_aoff{k}")
            m.d.comb += [wo_k.eq(woff.word_select(idx, PB)), ao_k.eq(aoff.word_select(idx, PB))]
            with m.If(g[f"en{k}"]):
                self.assert_(m, wo_k < wc, "a weight offset past the chunk's packed count")
                self.assert_(m, ao_k < ac, "an activation offset past the chunk's packed count")
        # strengthening: every useful position still held has offsets inside its slot's counts
        # (a consequence of the consistency assumed above: without it only the threads' reads
        # are checked, so a bad chunk fails where a thread reads it)
        for s in range(L if self.consistent else 0):
            rem, wo, ao = g[f"rem{s}"], g[f"woff{s}"], g[f"aoff{s}"]
            for p in range(M):
                with m.If(g[f"valid{s}"] & rem[p]):
                    self.assert_(m, (wo.word_select(p, PB) < wcnt[s]) & (ao.word_select(p, PB) < acnt[s]),
                                 "a held position's offsets past its slot's counts")


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
    Property("phantom.count", "phantom", "each accepted chunk with last owes one output and exactly that many "
             "valid lanes leave o (in/out counting; held = closing chunks in the window + output register + "
             "requantizer stages), any chunks, any back-pressure", lambda: PhantomTop("count"), "prove", 2,
             asdict(CONFIG)),
    Property("phantom.offsets", "phantom", "with consistent masks (popcount == packed count <= values), every "
             "issuing thread's weight and activation offsets lie below its chunk's packed counts",
             lambda: PhantomTop("offsets"), "prove", 2, asdict(CONFIG)),
]
