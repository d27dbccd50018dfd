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
    Not covered either: accumulation over several input channels
    (max_in_channels > 1), and the int32 bias add, which wraps as TFLite's int32
    arithmetic does.
"""

from __future__ import annotations

from dataclasses import asdict

from amaranth.hdl import Signal, Value, signed

from rtl.common.formal import FormalTop, Property, StreamHoldTop, elaborated
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


PROPERTIES = [
    Property("winograd.o_hold", "winograd", "o: valid & ~ready holds valid and payload to the next cycle (any "
             "beats, any back-pressure)", lambda: StreamHoldTop(lambda: WinogradEngine(CONFIG), lockstep=LANES),
             "prove", 2, asdict(CONFIG)),
    Property("winograd.no_overflow", "winograd", "the input-side transform registers (B^T d, V, U, U*V) equal "
             "their full-precision values, any int8 x, zero point and 3x3 kernel, max_in_channels 1",
             lambda: WinogradTop(upto="UV"), "bmc", 5, asdict(CONFIG_1)),
]
