"""Formal properties of the Winograd engine (``rtl.winograd.engine``); see
rtl/common/formal.py for how a property is built and docs/formal.md for the results.

``winograd.o_hold``
    the stream rule on ``o`` (F(2x2,3x3), 1 output channel, max_in_channels 1024);
    k-induction, with the requantizer lanes' valid bits in step as strengthening.
``winograd.no_overflow``
    no input-side transform register overflows for any int8 input: F(2x2,3x3), 1
    output channel, ``max_in_channels`` 1 (every beat a whole group: ``first`` and
    ``last``). The wrapper drives the weight tiles ``u`` from a free int8 3x3 kernel
    ``g`` as ``U = (sG) g (sG)^T`` (so U ranges over exactly the tiles int8 weights
    make); x and the input zero point are any int8. The registers B^T d, V and U*V
    equal the full-precision value of their stage computed from the previous
    stage's registers, and U fits its port; bounded (bmc depth 5) from reset: a beat
    accepted in the first cycle reaches U*V, and a beat's path does not depend on
    when it comes, so every input is covered.
    Not closed: the output side (M, A^T M, A^T M A, Y = A^T M A / s**2; the same
    wrapper with ``upto="ATMA"``): bmc did not get past the M step in 480 s. Its
    bounds depend on the correlation between the elements of M (for m = 2, A^T M has
    the same worst case as M), so a per-stage range argument cannot replace it.
    The U*V registers also lie in the exact range of a product of an int8 tile's U and
    V (``winograd_widths``' UV: +-1175040 for m = 2), the range the accumulator proof
    below assumes of them.
    Not covered: the int32 bias add, which wraps as TFLite's int32 arithmetic does.
``winograd.count``
    in/out counting (:func:`rtl.common.formal.stream_count_checks`): each accepted beat
    with ``last`` owes one output beat, and exactly that many leave ``o``, under any
    beats and back-pressure. Strengthening (white box): the outputs owed equal the
    ``last`` beats in stages 1-3, the valid bits of stages 4-8 and the first
    requantizer lane's valid bits (the lanes in step); k-induction.
``winograd.acc_no_overflow_row0`` .. ``row3``
    the accumulators of row i of M (``macc``, and the ``M`` tile handed on) never
    overflow at the configured ``max_in_channels`` (1024) for any int8 input: the
    multipliers are cut (their outputs free values) and the U*V registers assumed in
    their proven range (``winograd.no_overflow``), so any sequence of products of int8
    tiles is covered. The input is assumed to come in groups of at most
    ``max_in_channels`` beats (``first`` opens a group, ``last`` closes it; a beat after
    ``last`` has ``first``), seen where the beats reach the accumulators (stage 3, the
    pipeline delaying the port's beats unchanged). A monitor bound ``B`` (beats of the
    group so far times max|U*V|) gives the invariant ``-B <= macc <= B`` (and the same
    for ``M`` with its group's bound), and ``B <= max_in_channels * max|U*V|`` stays
    inside the registers' range (``B <= 2**31 - 1``), so the 32-bit adds never wrap;
    k-induction (k = 1), one row per property (4 lanes each).
"""

from __future__ import annotations

from dataclasses import asdict

from amaranth.hdl import Mux, Signal, Value, signed

from rtl.common.formal import (CUT_MULTIPLIERS, EngineTop, FormalTop, Property, StreamHoldTop, elaborated,
                               popcount, stream_count_checks)
from rtl.winograd import transforms as tf
from rtl.winograd.config import WinogradConfig
from rtl.winograd.engine import WinogradEngine

CONFIG = WinogradConfig(m=2, channels=1, max_in_channels=1024)
CONFIG_1 = WinogradConfig(m=2, channels=1, max_in_channels=1)
# the requantizer lanes' valid bits (one lane per output of the tile): in step, the
# strengthening that makes the hold property inductive
LANES = tuple(f"requant_{p}_{k}.valid" for p in range(CONFIG.channels) for k in range(CONFIG.m * CONFIG.m))


def _flat(x):
    return [v for row in x for v in (_flat(row) if isinstance(row, list) else [row])]


class WinogradTop(FormalTop):
    def __init__(self, config: WinogradConfig = CONFIG_1, upto: str = "ATMA"):
        super().__init__()
        self.upto = upto
        if config.max_in_channels != 1:
            raise ValueError(f"no_overflow is written for max_in_channels 1, not {config.max_in_channels}")
        self.cfg = config
        self.dut = WinogradEngine(config)
        d = self.dut
        self.g = [[[Signal(signed(8), name=f"g_{p}_{i}_{j}") for j in range(3)] for i in range(3)]
                  for p in range(config.channels)]
        # the payload's other fields, free (the payload signal itself is driven here)
        lay = config.in_layout()
        self.fields = {name: Signal(lay[name].shape, name=f"in_{name}") for name in
                       ("x", "bias", "mult", "shift", "first", "last")}
        self.free(d.i.valid, *self.fields.values(), d.o.ready, d.input_zero_point, d.zero_point, d.act_min,
                  d.act_max, *_flat(self.g))

    def properties(self, m):
        cfg, d = self.cfg, self.dut
        frag, _ = elaborated(d)
        m.submodules.dut = frag
        pr = d.probes
        a, P = cfg.a, cfg.channels
        self.hold_static(m, d.input_zero_point, d.zero_point, d.act_min, d.act_max)
        pl = d.i.payload
        for name, sig in self.fields.items():
            m.d.comb += getattr(pl, name).eq(sig)
        with m.If(d.i.valid):
            self.assume(m, pl.first & pl.last)  # max_in_channels 1: every beat a whole group
        # U = (sG) g (sG)^T from the int8 kernel, driven onto the port; it must fit.
        ub = cfg.bits("U")
        for q in range(P):
            u_full = tf.right_t(tf.left(cfg.sg, self.g[q]), cfg.sg)
            for k in range(a * a):
                v = u_full[k // a][k % a]
                m.d.comb += pl.u[q][k].eq(v)
                self.assert_(m, (v >= -(1 << (ub - 1))) & (v < (1 << (ub - 1))), "U does not fit its port")
        en = d.i.ready
        adv = self.past(m, en, name="past_en")
        valid = pr["valid"]
        d_in = [[pl.x[i * a + j] - d.input_zero_point for j in range(a)] for i in range(a)]
        stages = [  # (stage, registers, full-precision next value)
            ("BTd", pr["BTd"], tf.left(cfg.bt, d_in)),
            ("V", pr["V"], tf.right_t(pr["BTd"], cfg.bt)),
            ("UV", pr["UV"], [[[pr["U"][q][i * a + j] * pr["V"][i][j] for j in range(a)] for i in range(a)]
                              for q in range(P)]),
            ("ATM", pr["ATM"], [tf.left(cfg.at, pr["M"][q]) for q in range(P)]),
            ("ATMA", pr["ATMA"], [tf.right_t(pr["ATM"][q], cfg.at) for q in range(P)]),
        ]
        names = [st[0] for st in stages]
        stages = stages[:names.index(self.upto) + 1]
        for name, regs, full in stages:
            for k, (reg, value) in enumerate(zip(_flat(regs), _flat(full))):
                was = self.past(m, Value.cast(value), name=f"full_{name}_{k}")
                with m.If(self.started & adv):
                    self.assert_(m, reg == was, f"{name} register overflows")
        uv_lo, uv_hi, _ = cfg.widths["UV"]
        for reg in _flat(pr["UV"]):
            self.assert_(m, (reg >= uv_lo) & (reg <= uv_hi), "U*V outside the range of int8 tiles' products")
        if self.upto != "ATMA":
            return
        # M: a last beat's sum (one channel: first, so M = U*V of that beat)
        took = self.past(m, en & valid[2], name="past_took")
        for reg, uv in zip(_flat(pr["M"]), _flat(pr["UV"])):
            was = self.past(m, uv, name="full_M")
            with m.If(self.started & took):
                self.assert_(m, reg == was, "M register overflows")
        # Y: exact division of A^T M A by s**2
        s2 = cfg.s * cfg.s
        for reg, atma in zip(_flat(pr["Y"]), [pr["ATMA"][q][i][j] for q in range(P) for i in range(cfg.m)
                                              for j in range(cfg.m)]):
            was = self.past(m, atma, name="full_ATMA")
            with m.If(self.started & adv):
                self.assert_(m, reg * s2 == was, "Y is not A^T M A / s**2 (overflow or inexact)")


class WinogradCountTop(EngineTop):
    """In/out counting on the engine (``component``: a broken one, for the tests)."""

    def __init__(self, config: WinogradConfig = CONFIG, component=None):
        super().__init__(component if component is not None else WinogradEngine(config))
        self.cfg = config

    def properties(self, m):
        cfg, d = self.cfg, self.dut
        g = self.enter(m, hold=False)  # the statics free in every cycle
        valid, rq_valid = g["valid"], g["requant_0_0.valid"]
        lasts = [g["s1_last"], g["s2_last"], g["s3_last"]]
        held = (sum(valid[k] & lasts[k] for k in range(3)) + sum(valid[k] for k in range(3, len(valid)))
                + popcount(rq_valid))
        stream_count_checks(self, m, d.o, incoming=d.i.valid & d.i.ready & d.i.payload.last, held=held,
                            capacity=cfg.latency)


class WinogradAccTop(EngineTop):
    """The accumulators of row ``row`` of M never overflow for groups of at most ``limit``
    beats (default: the configuration's ``max_in_channels``), the U*V registers free in
    their proven range (the property cuts the multipliers). A ``limit`` above the
    configuration's (a too-narrow accumulator) makes it fail."""

    def __init__(self, row: int, config: WinogradConfig = CONFIG, limit: int | None = None):
        super().__init__(WinogradEngine(config))
        self.row, self.cfg = row, config
        self.limit = config.max_in_channels if limit is None else limit

    def properties(self, m):
        cfg, d = self.cfg, self.dut
        g = self.enter(m, hold=False)  # the statics free in every cycle
        a, P = cfg.a, cfg.channels
        lo, hi, _ = cfg.widths["UV"]
        if lo != -hi:
            raise ValueError(f"the bound monitor assumes a symmetric U*V range, not [{lo}, {hi}]")
        top = self.limit * hi  # the largest |M| of a group of `limit` beats
        pr = d.probes
        for q in range(P):
            for j in range(a):
                uv = pr["UV"][q][self.row][j]
                self.assume(m, (uv >= lo) & (uv <= hi))
        # groups, where the beats reach the accumulators (stage 3)
        took = d.i.ready & g["valid"][2]
        first, last = g["s3_first"], g["s3_last"]
        bound = Signal(range(top + 1), name="acc_bound")  # beats so far x max|U*V|
        m_bound = Signal(range(top + 1), name="m_bound")  # the same for the M tile handed on
        after_last = Signal(init=1, name="after_last")
        new = Signal(range(top + hi + 1), name="acc_bound_next")
        m.d.comb += new.eq(Mux(first, 0, bound) + hi)
        with m.If(took):
            self.assume(m, first | ~after_last)  # a group opens with `first`
            self.assume(m, new <= top)  # at most `limit` beats
            with m.If(last):
                m.d.sync += [m_bound.eq(new), after_last.eq(1)]
            with m.Else():
                m.d.sync += [bound.eq(new), after_last.eq(0)]
        self.assert_(m, (bound <= top) & (m_bound <= top), "a group bound past max_in_channels beats")
        # the bound stays inside the registers' range: a value inside it is exact (no wrap)
        reg_max = (1 << (cfg.bits("M") - 1)) - 1
        self.assert_(m, (bound <= reg_max) & (m_bound <= reg_max), "a group's bound past the accumulator's range")
        for q in range(P):
            for j in range(a):
                acc, mt = g[f"macc_{q}_{self.row}_{j}"], g[f"m_{q}_{self.row}_{j}"]
                self.assert_(m, (acc >= -bound) & (acc <= bound), "an accumulator past its group's bound")
                self.assert_(m, (mt >= -m_bound) & (mt <= m_bound), "an M register past its group's bound")


PROPERTIES = [
    Property("winograd.o_hold", "winograd", "o: valid & ~ready holds valid and payload to the next cycle (any "
             "beats, any back-pressure)", lambda: StreamHoldTop(lambda: WinogradEngine(CONFIG), lockstep=LANES),
             "prove", 2, asdict(CONFIG)),
    Property("winograd.no_overflow", "winograd", "the input-side transform registers (B^T d, V, U, U*V) equal "
             "their full-precision values and U*V lies in the exact range of int8 tiles' products, any int8 x, "
             "zero point and 3x3 kernel, max_in_channels 1",
             lambda: WinogradTop(upto="UV"), "bmc", 5, asdict(CONFIG_1)),
    Property("winograd.count", "winograd", "each accepted last beat owes one output beat and exactly that many "
             "leave o (in/out counting; held = last beats in stages 1-3, stages 4-8, requantizer stages), any "
             "beats, any back-pressure", lambda: WinogradCountTop(), "prove", 2, asdict(CONFIG)),
] + [
    Property(f"winograd.acc_no_overflow_row{i}", "winograd", f"row {i} of the accumulators (macc, M) never "
             f"overflows for groups of up to max_in_channels {CONFIG.max_in_channels} beats of any int8 tiles "
             "(multipliers cut, U*V free in its proven range; bound monitor -B <= acc <= B)",
             lambda i=i: WinogradAccTop(i), "prove", 1, asdict(CONFIG), cut=CUT_MULTIPLIERS)
    for i in range(CONFIG.m + 2)
]
