"""Formal properties of the requantizer (the pieces every engine's properties share are
in :mod:`rtl.common.formal`).

A property is a wrapper ``Elaboratable`` around the unmodified component: the
wrapper instantiates it, leaves its inputs free (top-level ports, any value in any
cycle) except where an ``Assume`` restricts them, and states the property with
``Assert`` on its outputs (and, for white-box properties, on internal signals read
from the elaborated component by name). ``cosim.formal`` writes the wrapper as
RTLIL and proves it with SymbiYosys; nothing here imports a tool.

Properties of the requantizer (``PROPERTIES``), default configuration (32-bit):

``requant.o_hold``
    an offered output holds its payload until accepted (any back-pressure); k-induction.
``requant.count``
    every accepted input leaves exactly once, in order: a shadow delay line advanced
    by the port handshakes says when an output is due, and ``o.valid`` equals it in
    every cycle (nothing lost, nothing duplicated); the pipeline's own valid bits
    equal the shadow line's (white box: the inductive strengthening); k-induction.
``requant.stages``
    full 32-bit width: every pipeline register equals its stage of the formal
    reference (:func:`ref_stage1` .. :func:`ref_stage5`, whose composition is
    :func:`reference`) applied to the previous stage's registers when the pipeline
    advances, and keeps its value when it stalls; k-induction. With ``count`` this
    makes every output the reference of its input, by composition. The 64-bit
    product is the solver's bit-vector product of the same two registers.
``requant.reference``
    end to end: the output equals :func:`reference` of the accepted input under any
    back-pressure, at reduced widths (accumulator 6 bits, output 4: the RTL is
    generic in the width, its configuration insists on 32); bounded (bmc). At 8 bits
    and more the solver does not finish the two multipliers' equivalence in minutes.

The same four for the ``fast`` pipeline (``*_fast``). Its stages property checks the
partial products as the solver's products of the register halves, the sums, and the
high half against :func:`ref_stage3` of the product the sum registers hold, whenever
that lies in the range of an n x n product, and the high stage's two rounding masks as a
function of its shift in every cycle; that the sums always hold x * q is the
multiplier identity, proved end to end at 6 bits (``requant.reference_fast``, bmc 11 =
latency 8 + 3) and simulated at 32.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed

from golden.quant import SHIFT_MAX, SHIFT_MIN
from rtl.common.formal import FormalTop, Property, elaborated, stream_out_checks
from rtl.requant.config import RequantConfig
from rtl.requant.requantizer import Requantizer

# ---- the formal reference of the double rounding ------------------------------------

def _sig(m: Module, shape, value, name: str) -> Signal:
    s = Signal(shape, name=name)
    m.d.comb += s.eq(value)
    return s


def ref_stage1(m: Module, acc, mult, shift, n: int):
    """x = wrap_n(acc * 2**left) (the low n bits of acc shifted left), q, right."""
    left = _sig(m, range(SHIFT_MAX + 2), Mux(shift > 0, shift, 0), "ref_left")
    right = _sig(m, range(-SHIFT_MIN + 1), Mux(shift < 0, -shift, 0), "ref_right")
    return _sig(m, signed(n), (acc << left)[:n], "ref_x"), mult, right


def ref_stage2(m: Module, x, q, n: int):
    """The exact (2n)-bit product x * q."""
    return _sig(m, signed(2 * n), x * q, "ref_prod")


def ref_stage3(m: Module, prod, x_q_min, n: int):
    """SaturatingRoundingDoublingHighMul: INT_MAX when x == q == INT_MIN (``x_q_min``),
    else trunc((prod + nudge) / 2**(n-1)), by sign and magnitude (nudge 2**(n-2) for
    prod >= 0, 1 - 2**(n-2) otherwise)."""
    int_max = (1 << (n - 1)) - 1
    v = _sig(m, signed(2 * n + 1), prod + Mux(prod >= 0, 1 << (n - 2), 1 - (1 << (n - 2))), "ref_v")
    mag = _sig(m, 2 * n + 1, Mux(v < 0, -v, v), "ref_mag")
    quo = _sig(m, signed(2 * n + 2), Mux(v < 0, -(mag >> (n - 1)), mag >> (n - 1)), "ref_quo")
    return _sig(m, signed(n), Mux(x_q_min, int_max, quo[:n]), "ref_h")


def ref_stage4(m: Module, h, right, n: int):
    """RoundingDivideByPOT, half away from zero, by sign and magnitude:
    sign(h) * ((|h| + 2**(right-1)) >> right)."""
    hmag = _sig(m, n + 1, Mux(h < 0, -h, h), "ref_hmag")
    half = _sig(m, n + 1, (Const(1, n + 2) << right) >> 1, "ref_half")  # 0 when right == 0
    rmag = _sig(m, n + 2, (hmag + half) >> right, "ref_rmag")
    return _sig(m, signed(n + 3), Mux(h < 0, -rmag, rmag), "ref_r")


def ref_stage5(m: Module, r, zero_point, act_min, act_max, out_bits: int):
    """clamp(r + zero_point, act_min, act_max), act_min taking precedence."""
    y = _sig(m, signed(len(r) + 2), r + zero_point, "ref_y")
    return _sig(m, signed(out_bits), Mux(y < act_min, act_min, Mux(y > act_max, act_max, y)), "ref_out")


def reference(m: Module, acc, mult, shift, zero_point, act_min, act_max, n: int, out_bits: int) -> Signal:
    """TFLite's double-rounding requantization of ``acc`` at accumulator width ``n``,
    written apart from the RTL from :mod:`golden.quant`'s description, as the
    composition of the five stage functions ``ref_stage1`` .. ``ref_stage5`` (comb logic).
    Checked against :func:`golden.quant.requantize` by simulation in tests/test_formal.py."""
    int_min = -(1 << (n - 1))
    x, q, right = ref_stage1(m, acc, mult, shift, n)
    prod = ref_stage2(m, x, q, n)
    h = ref_stage3(m, prod, (x == int_min) & (q == int_min), n)
    r = ref_stage4(m, h, right, n)
    return ref_stage5(m, r, zero_point, act_min, act_max, out_bits)


def config_at_width(acc_bits: int, out_bits: int = 8, pipeline: str = "compact") -> RequantConfig:
    """A requantizer configuration at accumulator width ``acc_bits`` for formal work only:
    the RTL is generic in the width, the configuration accepts only 32 (TFLite's)."""
    cfg = RequantConfig(out_bits=out_bits, pipeline=pipeline)
    if acc_bits != 32:
        object.__setattr__(cfg, "acc_bits", acc_bits)
    return cfg


class RequantTop(FormalTop):
    """The requantizer with a shadow copy of its accepted inputs.

    ``check``: "hold" (stream rule on ``o``), "count" (``o.valid`` equals the shadow
    line's valid: each accepted input leaves exactly once, after ``latency``
    advancing cycles), "reference" (``o.payload`` equals :func:`reference` of the
    shadow input whenever ``o.valid``). ``ready_always`` assumes ``o.ready`` high.
    ``component`` replaces the requantizer (a broken design, for the tests)."""

    def __init__(self, check: str, *, acc_bits: int = 32, out_bits: int = 8, pipeline: str = "compact",
                 ready_always: bool = False, component=None):
        super().__init__()
        self.check, self.ready_always = check, ready_always
        self.cfg = config_at_width(acc_bits, out_bits, pipeline)
        self.dut = component if component is not None else Requantizer(self.cfg)
        d = self.dut
        self.free(d.i.valid, d.i.payload, d.o.ready, d.zero_point, d.act_min, d.act_max)

    def properties(self, m):
        d = self.dut
        frag, self.internal = elaborated(d)
        m.submodules.dut = frag
        self.hold_static(m, d.zero_point, d.act_min, d.act_max)
        # Shifts in the valid range (golden.quant: SHIFT_MIN..SHIFT_MAX); at a reduced width
        # n the right shift stops at n - 1, as it stops at 31 for 32 bits.
        shift = d.i.payload.shift
        self.assume(m, (shift >= max(SHIFT_MIN, 1 - self.cfg.acc_bits)) & (shift <= SHIFT_MAX))
        if self.ready_always:
            self.assume(m, d.o.ready)
        if self.check == "hold":
            stream_out_checks(self, m, d.o)
            return
        if self.check == "stages":
            self._stages(m, d)
            return
        # The shadow line: the accepted input and its valid bit, one stage per cycle
        # of the pipeline's advance (which the ports show: i.ready).
        lat = self.cfg.latency
        adv = d.i.ready
        stages = []
        prev_valid, prev_payload = d.i.valid, Value.cast(d.i.payload)
        for k in range(lat):
            sv = Signal(name=f"shadow_valid{k}")
            sp = Signal(prev_payload.shape(), name=f"shadow_in{k}")
            with m.If(adv):
                m.d.sync += [sv.eq(prev_valid), sp.eq(prev_payload)]
            stages.append((sv, sp))
            prev_valid, prev_payload = sv, sp
        if self.check == "count":
            self.assert_(m, d.o.valid == prev_valid, "o.valid differs from the accepted inputs due")
            # The inductive strengthening (white box): the pipeline's own valid bits
            # equal the shadow line's, stage by stage.
            valid = self.internal["valid"]
            for k, (sv, _) in enumerate(stages):
                self.assert_(m, valid[k] == sv, "a stage's valid bit differs from the shadow line")
            return
        layout = self.cfg.in_layout()
        p = layout(prev_payload)
        ref = reference(m, p.acc, p.mult, p.shift, d.zero_point, d.act_min, d.act_max,
                        self.cfg.acc_bits, self.cfg.out_bits)
        with m.If(d.o.valid & prev_valid):
            self.assert_(m, Value.cast(d.o.payload) == ref, "o.payload differs from the reference")


    def _stages(self, m, d):
        """Each pipeline register equals its stage of the reference applied to the
        previous stage's registers (the ports for the shift stage) when the pipeline
        advanced, and keeps its value when it stalled: white box, one step per stage."""
        n, g = self.cfg.acc_bits, self.internal
        int_min = -(1 << (n - 1))
        p = d.i.payload
        x, q, right = ref_stage1(m, p.acc, p.mult, p.shift, n)
        out = Value.cast(d.o.payload)
        if self.cfg.pipeline == "compact":
            checks = [  # (what, its value now, its reference one advance earlier)
                ("shift_x", g["shift_x"], x), ("shift_q", g["shift_q"], q), ("shift_right", g["shift_right"], right),
                ("mul_prod", g["mul_prod"], ref_stage2(m, g["shift_x"], g["shift_q"], n)),
                ("mul_sat", g["mul_sat"], (g["shift_x"] == int_min) & (g["shift_q"] == int_min)),
                ("mul_right", g["mul_right"], g["shift_right"]),
                ("high_h", g["high_h"], ref_stage3(m, g["mul_prod"], g["mul_sat"], n)),
                ("high_right", g["high_right"], g["mul_right"]),
                ("round_r", g["round_r"], ref_stage4(m, g["high_h"], g["high_right"], n)),
                ("o_payload", out, ref_stage5(m, g["round_r"], d.zero_point, d.act_min, d.act_max,
                                              self.cfg.out_bits)),
            ]
            invariants = []
        else:
            checks = self._fast_checks(m, d, x, q, right)
            # the rounding masks the high stage keeps beside its shift: a function of it,
            # in every cycle (the round stage's check reads the shift alone)
            hr = g["high_right"]
            invariants = [
                ("high_half_at", g["high_half_at"], _sig(m, n, Cat(hr == j + 1 for j in range(n)), "ref_half_at")),
                ("high_below_half", g["high_below_half"], _sig(m, n, Cat(hr > j + 1 for j in range(n)),
                                                               "ref_below_half")),
            ]
        advanced = self.past(m, d.i.ready, name="past_advance")
        for name, now, value, *when in checks:
            was = self.past(m, Value.cast(value), name=f"expect_{name}")
            applies = self.past(m, when[0], name=f"applies_{name}") if when else 1
            with m.If(self.started & advanced & applies):
                self.assert_(m, now == was, f"{name} differs from its reference stage")
        for name, now, value in invariants:
            with m.If(self.started):
                self.assert_(m, now == value, f"{name} differs from its function of the stage's shift")
        regs = [(name, g[name]) for name in g if name.split("_")[0] in self.cfg.stages and "$" not in name]
        for name, reg in regs + [("o_payload", out)]:
            before = self.past(m, reg, name=f"before_{name}")
            with m.If(self.started & ~advanced):
                self.assert_(m, reg == before, f"{name} changed while the pipeline stalled")

    def _fast_checks(self, m, d, x, q, right):
        """The fast pipeline's stages against the reference. The partial products are
        the solver's products of the halves of the same registers; the sums are taken at
        their registers' widths. The high half is the reference's of the product the sum
        registers hold (outer + mid 2**k - 2**(n-2)), checked whenever that lies where
        products of two n-bit numbers lie: |p| <= 2**(n-1) (2**(n-1) - 1), or p = 2**(2n-2)
        (INT_MIN squared, the saturating case). That the sum registers always
        hold one -- the identity x q = hh 2**2k + (hl + lh) 2**k + ll -- is the
        multiplier equivalence the solver does not finish at 32 bits; it is proved end to
        end at 6 bits (``requant.reference_fast``) and simulated at 32."""
        n, g, ob = self.cfg.acc_bits, self.internal, self.cfg.out_bits
        k = n // 2
        sx, sq = g["shift_x"], g["shift_q"]
        xl, xh, ql, qh = sx[:k], sx[k:].as_signed(), sq[:k], sq[k:].as_signed()
        prod = _sig(m, signed(2 * n + 2), g["sum_outer"] + g["sum_mid"] * (1 << k) - (1 << (n - 2)), "ref_sum_prod")
        big = (1 << (n - 1)) * ((1 << (n - 1)) - 1)  # the largest |x q| but INT_MIN squared
        a_product = (prod >= -big) & ((prod <= big) | (prod == 1 << (2 * n - 2)))
        r = _sig(m, signed(n + 2), g["round_q"] + g["round_up"], "rtl_round_r")
        ref_y = _sig(m, signed(n + 3), r + d.zero_point, "ref_add_y")
        # the value the compare registers select (the clamp stage is that selection)
        clamped = _sig(m, signed(ob), Mux(g["compare_below"], d.act_min,
                                          Mux(g["compare_above"], d.act_max, g["compare_low"])), "rtl_clamped")
        return [
            ("shift_x", sx, x), ("shift_q", sq, q), ("shift_right", g["shift_right"], right),
            ("pp_hh", g["pp_hh"], xh * qh), ("pp_hl", g["pp_hl"], xh * ql),
            ("pp_lh", g["pp_lh"], xl * qh), ("pp_ll", g["pp_ll"], xl * ql),
            ("pp_right", g["pp_right"], g["shift_right"]),
            ("sum_mid", g["sum_mid"], _sig(m, signed(n + 1), g["pp_hl"] + g["pp_lh"], "ref_sum_mid")),
            ("sum_outer", g["sum_outer"], _sig(m, signed(2 * n), g["pp_hh"] * (1 << (2 * k)) + g["pp_ll"]
                                               + (1 << (n - 2)), "ref_sum_outer")),
            ("sum_right", g["sum_right"], g["pp_right"]),
            ("high_h", g["high_h"], ref_stage3(m, prod, prod == (1 << (2 * n - 2)), n), a_product),
            ("high_right", g["high_right"], g["sum_right"]),
            ("round", r, ref_stage4(m, g["high_h"], g["high_right"], n)),
            ("add_y", g["add_y"], ref_y),
            ("compare", clamped, ref_stage5(m, g["add_y"], 0, d.act_min, d.act_max, ob)),
            ("o_payload", Value.cast(d.o.payload), clamped),
        ]


REDUCED = {"acc_bits": 6, "out_bits": 4}  # the end-to-end comparison's widths (see the module docstring)
DEFAULT = {"acc_bits": 32, "out_bits": 8, "shift_bits": 6}

FAST = {"pipeline": "fast"}

PROPERTIES = [
    Property("requant.o_hold", "requant", "o: valid & ~ready holds valid and payload to the next cycle",
             lambda: RequantTop("hold"), "prove", 2, DEFAULT),
    Property("requant.count", "requant", "each accepted input leaves o exactly once, in order, under any "
             "back-pressure (o.valid == a shadow line's valid every cycle; stage valid bits as strengthening)",
             lambda: RequantTop("count"), "prove", 2, DEFAULT),
    Property("requant.stages", "requant", "full 32-bit width: every pipeline register == its stage of the formal "
             "double-rounding reference applied to the previous stage (advance), unchanged (stall)",
             lambda: RequantTop("stages"), "prove", 2, DEFAULT),
    Property("requant.reference", "requant", "o.payload == the whole formal reference of the accepted input, any "
             "back-pressure, at reduced widths acc_bits 6, out_bits 4",
             lambda: RequantTop("reference", **REDUCED), "bmc", 8, {**DEFAULT, **REDUCED}),
    Property("requant.o_hold_fast", "requant", "pipeline fast: o holds valid and payload until accepted",
             lambda: RequantTop("hold", **FAST), "prove", 2, {**DEFAULT, **FAST}),
    Property("requant.count_fast", "requant", "pipeline fast: each accepted input leaves o exactly once, in order, "
             "under any back-pressure (8 stages)",
             lambda: RequantTop("count", **FAST), "prove", 2, {**DEFAULT, **FAST}),
    Property("requant.stages_fast", "requant", "pipeline fast, full 32-bit width: the shift registers, the four "
             "partial products of their halves, their sums, the high half (of the sums as the product), rounding "
             "shift + rounding bit, zero point and clamp == the formal reference of the previous stage; unchanged "
             "under a stall", lambda: RequantTop("stages", **FAST), "prove", 2, {**DEFAULT, **FAST}),
    Property("requant.reference_fast", "requant", "pipeline fast: o.payload == the whole formal reference of the "
             "accepted input (the partial-product split included), any back-pressure, at acc_bits 6, out_bits 4",
             lambda: RequantTop("reference", **REDUCED, **FAST), "bmc", 11, {**DEFAULT, **REDUCED, **FAST}),
]
