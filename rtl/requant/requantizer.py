"""Streaming int32 -> int8 requantizer, shared by every engine.

Bit-exact with :func:`golden.quant.requantize` (TFLite's double-rounding
``MultiplyByQuantizedMultiplier``, then output zero point and clamp), in every
pipeline of :data:`rtl.requant.config.PIPELINES`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.quant import SHIFT_MIN
from rtl.common.ecp5 import mult18x18d
from rtl.requant.config import RequantConfig


class Requantizer(wiring.Component):
    """int32 accumulator x (multiplier, shift) + zero point -> clamped int8.

    Parameters
    ----------
    config : RequantConfig
        ``config.pipeline`` chooses the registered stages (:data:`rtl.requant.config.PIPELINES`):

        * ``"compact"``, 5 stages: shift | 64-bit product | doubling high half |
          rounding shift | zero point and clamp;
        * ``"fast"``, 8 stages: shift | four partial products of the 16-bit halves (one
          18 x 18 DSP each, registered) | their middle and outer sums | high half and
          the rounding masks | rounding shift and rounding bit | rounding bit and zero
          point added | clamp comparisons on out_bits bits | clamp.

        ``config.dsp = "ecp5"`` (fast only) instantiates the four DSPs as ECP5
        MULT18X18D (:func:`mult18x18d`) whose own input registers are a stage of their
        own, ``dspin``, loaded from the shift stage's x and q (routing only), and whose
        output registers are the pp stage's products: 9 stages. Verilog only (the
        Amaranth simulator cannot run a vendor primitive); co-simulated with our model
        ``rtl/requant/ecp5_mult18x18d.v``.

    Ports
    -----
    i : In(stream)   payload {acc: signed(32), mult: signed(32), shift: signed(6)};
                     ``shift`` > 0 shifts left before the multiply, < 0 right after it.
    o : Out(stream)  payload signed(out_bits), the requantized value.
    zero_point : In(signed(out_bits))  output zero point, held static during a run.
    act_min, act_max : In(signed(out_bits))  clamp range, held static during a run.

    Latency ``config.latency`` cycles (one per stage); throughput one result per cycle.
    The whole pipeline stalls while ``o.valid & ~o.ready`` (back-pressure); ``i.ready``
    is high otherwise. Registers are named ``<stage>_<value>``, as the formal
    properties (:mod:`rtl.requant.formal`) read them.
    """

    def __init__(self, config: RequantConfig | None = None):
        config = RequantConfig() if config is None else config
        if not isinstance(config, RequantConfig):
            raise TypeError(f"config must be a RequantConfig, not {config!r}")
        self._config = config
        ob = config.out_bits
        super().__init__({
            "i": In(stream.Signature(config.in_layout())),
            "o": Out(stream.Signature(signed(ob))),
            "zero_point": In(signed(ob)),
            "act_min": In(signed(ob)),
            "act_max": In(signed(ob)),
        })

    @property
    def config(self) -> RequantConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        n = cfg.acc_bits

        en = Signal()  # the pipeline advances
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        m.d.comb += self.i.ready.eq(en)

        valid = Signal(cfg.latency)  # valid bit of each stage
        with m.If(en):
            m.d.sync += valid.eq(Cat(self.i.valid, valid[:-1]))
        m.d.comb += self.o.valid.eq(valid[-1])

        def reg(stage: str, name: str, value, shape):
            """The register ``<stage>_<name>``, loaded with ``value`` when the pipeline advances."""
            s = Signal(shape, name=f"{stage}_{name}")
            with m.If(en):
                m.d.sync += s.eq(value)
            return s

        # shift: left shift with int32 wrap-around; split the shift. With dsp="ecp5" the
        # DSPs' own input registers load x and q a stage later (dspin, in _fast).
        p = self.i.payload
        left = Mux(p.shift > 0, p.shift.as_unsigned()[:5], 0)
        x = reg("shift", "x", (p.acc << left)[:n].as_signed(), signed(n))
        q = reg("shift", "q", p.mult, signed(n))
        right = reg("shift", "right", Mux(p.shift < 0, -p.shift, 0), range(-SHIFT_MIN + 1))

        if cfg.pipeline == "compact":
            y = self._compact(m, reg, x, q, right)
            below, above, low = y < self.act_min, y > self.act_max, y
        else:
            below, above, low = self._fast(m, reg, x, q, right, en)

        # clamp (the output register): act_min first, as golden.quant.requantize.
        with m.If(en):
            with m.If(below):
                m.d.sync += self.o.payload.eq(self.act_min)
            with m.Elif(above):
                m.d.sync += self.o.payload.eq(self.act_max)
            with m.Else():
                m.d.sync += self.o.payload.eq(low)
        return m

    def _compact(self, m, reg, x, q, right):
        """Stages mul, high, round of the compact pipeline; returns the clamp stage's y."""
        n = self._config.acc_bits
        int_min, int_max = -(1 << (n - 1)), (1 << (n - 1)) - 1
        # mul: the full 2n-bit product (Yosys maps it to 4 MULT18X18D and adds their
        # outputs in the same stage); flag the one saturating case.
        prod = reg("mul", "prod", x * q, signed(2 * n))
        sat = reg("mul", "sat", (x == int_min) & (q == int_min), 1)
        right = reg("mul", "right", right, right.shape())
        # high: rounding doubling high half: (prod + nudge) / 2**31, truncating.
        nudge = Mux(prod >= 0, Const(1 << (n - 2), signed(n + 1)), Const(1 - (1 << (n - 2)), signed(n + 1)))
        v = Signal(signed(2 * n + 1))
        m.d.comb += v.eq(prod + nudge)
        toward_zero = Mux(v < 0, Const((1 << (n - 1)) - 1, unsigned(n)), 0)
        h = reg("high", "h", Mux(sat, int_max, ((v + toward_zero) >> (n - 1))[:n].as_signed()), signed(n))
        right = reg("high", "right", right, right.shape())
        # round: rounding divide by 2**right, ties away from zero.
        mask = Signal(unsigned(n))
        m.d.comb += mask.eq((Const(1, unsigned(n + 1)) << right) - 1)
        remainder = h.as_unsigned() & mask
        threshold = (mask >> 1) + (h < 0)
        r = reg("round", "r", (h >> right) + (remainder > threshold), signed(n))
        # clamp: output zero point (then the comparisons and the clamp).
        y = Signal(signed(n + 1))
        m.d.comb += y.eq(r + self.zero_point)
        return y

    def _fast(self, m, reg, x, q, right, en):
        """Stages (dspin,) pp .. compare of the fast pipeline; returns the clamp stage's
        (below act_min, above act_max, value) registers. ``x`` and ``q`` are the shift
        stage's registers (with dsp="ecp5", what the DSPs' input registers load)."""
        cfg = self._config
        n, ob = cfg.acc_bits, cfg.out_bits
        k = n // 2  # x = xh 2**k + xl with xl unsigned, the same for q
        int_max = (1 << (n - 1)) - 1
        # pp: x * q = hh 2**2k + (hl + lh) 2**k + ll; each partial product at most
        # 17 x 17 bits signed, one 18 x 18 DSP with its output registered. The x and q
        # registers drive the DSPs and nothing else.
        xl, xh, ql, qh = x[:k], x[k:].as_signed(), q[:k], q[k:].as_signed()
        shapes = {"hh": signed(2 * (n - k)), "hl": signed(n + 1), "lh": signed(n + 1), "ll": unsigned(2 * k)}
        factors = {"hh": (xh, qh), "hl": (xh, ql), "lh": (xl, qh), "ll": (xl, ql)}
        pp = {}
        for name, (a, b) in factors.items():
            if cfg.dsp == "ecp5":  # the DSP's own registers: dspin (x, q halves) in, pp out
                prod = mult18x18d(m, f"pp_{name}", a, b, en)[:shapes[name].width]
                pp[name] = prod.as_signed() if shapes[name].signed else prod
            else:
                pp[name] = reg("pp", name, a * b, shapes[name])
        hh, hl, lh, ll = pp["hh"], pp["hl"], pp["lh"], pp["ll"]
        if cfg.dsp == "ecp5":
            right = reg("dspin", "right", right, right.shape())
        right = reg("pp", "right", right, right.shape())
        # sum: the middle terms, and the outer ones (side by side: a concatenation) with
        # the rounding nudge 2**(n-2) folded in. Neither overflows its register:
        # |hl + lh| < 2**n, |hh 2**2k + ll + 2**(n-2)| < 2**(2n-1).
        mid = reg("sum", "mid", hl + lh, signed(n + 1))
        outer = reg("sum", "outer", (Cat(ll, hh).as_signed() + (1 << (n - 2)))[:2 * n].as_signed(), signed(2 * n))
        right = reg("sum", "right", right, right.shape())
        # high: TFLite's nudge (2**(n-2), or 1 - 2**(n-2) for a negative product) and its
        # truncating division by 2**(n-1) are, for either sign, floor((prod + 2**(n-2)) /
        # 2**(n-1)): bits n-1 .. 2n-2 of t = prod + 2**(n-2) = outer + mid 2**k. They fit
        # n bits except in the saturating case x == q == INT_MIN, the only product as
        # large as 2**(2n-2): there t lies in [2**(2n-2), 2**(2n-1)) (bit 2n-2 set, bit
        # 2n-1 clear) and the result is INT_MAX.
        t = Signal(signed(2 * n))
        m.d.comb += t.eq(outer + (mid << k))
        sat = t[2 * n - 2] & ~t[2 * n - 1]
        h = reg("high", "h", Mux(sat, int_max, t[n - 1:2 * n - 1].as_signed()), signed(n))
        # and, from the shift alone (beside the carry chain), which bit of h is the
        # rounding half (bit right-1; none when right == 0) and which bits lie under it.
        half_at = reg("high", "half_at", Cat(right == j + 1 for j in range(n)), n)
        below_half = reg("high", "below_half", Cat(right > j + 1 for j in range(n)), n)
        right = reg("high", "right", right, right.shape())
        # round: h >> right and the rounding bit, side by side (no carry chain). Ties
        # away from zero: up when bit right-1 of h is set and h >= 0 or a bit below it
        # is set (the remainder exceeds half when h < 0: TFLite's threshold + 1). Both
        # bits are AND-OR trees over h and the high stage's masks.
        hu = h.as_unsigned()
        up = (hu & half_at).any() & (~h[-1] | (hu & below_half).any())
        r = reg("round", "q", h >> right, signed(n))
        up = reg("round", "up", up, 1)
        # add: r + up + zero point in one carry chain, (2r + up) + (2 zp + up) = 2 (r + up + zp).
        total = Cat(up, r).as_signed() + Cat(up, self.zero_point).as_signed()
        y = reg("add", "y", total[1:n + 2].as_signed(), signed(n + 1))
        # compare: only the low out_bits bits meet a carry chain; a y outside the
        # out_bits range (its top bits not all equal) lies beyond one bound, by its sign.
        outside = ~(y[ob - 1:].all() | ~y[ob - 1:].any())
        low = y[:ob].as_signed()
        below = reg("compare", "below", Mux(outside, y[-1], low < self.act_min), 1)
        above = reg("compare", "above", Mux(outside, ~y[-1], low > self.act_max), 1)
        low = reg("compare", "low", low, signed(ob))
        return below, above, low
