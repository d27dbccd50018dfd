"""Streaming int32 -> int8 requantizer, shared by every engine.

Bit-exact with :func:`golden.quant.requantize` (TFLite's double-rounding
``MultiplyByQuantizedMultiplier``, then output zero point and clamp).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.quant import SHIFT_MIN
from rtl.requant.config import RequantConfig


class Requantizer(wiring.Component):
    """int32 accumulator x (multiplier, shift) + zero point -> clamped int8.

    Parameters
    ----------
    config : RequantConfig

    Ports
    -----
    i : In(stream)   payload {acc: signed(32), mult: signed(32), shift: signed(6)};
                     ``shift`` > 0 shifts left before the multiply, < 0 right after it.
    o : Out(stream)  payload signed(out_bits), the requantized value.
    zero_point : In(signed(out_bits))  output zero point, held static during a run.
    act_min, act_max : In(signed(out_bits))  clamp range, held static during a run.

    Latency ``config.latency`` cycles; throughput one result per cycle. The whole
    pipeline stalls while ``o.valid & ~o.ready`` (back-pressure); ``i.ready`` is
    high otherwise.
    """

    def __init__(self, config: RequantConfig | None = None):
        self._config = config or RequantConfig()
        ob = self._config.out_bits
        super().__init__({
            "i": In(stream.Signature(self._config.in_layout())),
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
        n = self._config.acc_bits
        int_min = -(1 << (n - 1))
        int_max = (1 << (n - 1)) - 1

        en = Signal()  # the pipeline advances
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        m.d.comb += self.i.ready.eq(en)

        valid = Signal(self._config.LATENCY)  # valid bit of each stage
        with m.If(en):
            m.d.sync += valid.eq(Cat(self.i.valid, valid[:-1]))
        m.d.comb += self.o.valid.eq(valid[-1])

        # Stage 1: left shift with int32 wrap-around; split the shift.
        p = self.i.payload
        s1_x = Signal(signed(n))
        s1_q = Signal(signed(n))
        s1_right = Signal(range(-SHIFT_MIN + 1))
        left = Mux(p.shift > 0, p.shift.as_unsigned()[:5], 0)
        with m.If(en):
            m.d.sync += [
                s1_x.eq((p.acc << left)[:n].as_signed()),
                s1_q.eq(p.mult),
                s1_right.eq(Mux(p.shift < 0, -p.shift, 0)),
            ]

        # Stage 2: full 64-bit product; flag the one saturating case.
        s2_prod = Signal(signed(2 * n))
        s2_sat = Signal()
        s2_right = Signal.like(s1_right)
        with m.If(en):
            m.d.sync += [
                s2_prod.eq(s1_x * s1_q),
                s2_sat.eq((s1_x == int_min) & (s1_q == int_min)),
                s2_right.eq(s1_right),
            ]

        # Stage 3: rounding doubling high half: (prod + nudge) / 2**31, truncating.
        nudge = Mux(s2_prod >= 0, Const(1 << (n - 2), signed(n + 1)), Const(1 - (1 << (n - 2)), signed(n + 1)))
        v = Signal(signed(2 * n + 1))
        m.d.comb += v.eq(s2_prod + nudge)
        toward_zero = Mux(v < 0, Const((1 << (n - 1)) - 1, unsigned(n)), 0)
        s3_h = Signal(signed(n))
        s3_right = Signal.like(s1_right)
        with m.If(en):
            m.d.sync += [
                s3_h.eq(Mux(s2_sat, int_max, ((v + toward_zero) >> (n - 1))[:n].as_signed())),
                s3_right.eq(s2_right),
            ]

        # Stage 4: rounding divide by 2**right, ties away from zero.
        mask = Signal(unsigned(n))
        m.d.comb += mask.eq((Const(1, unsigned(n + 1)) << s3_right) - 1)
        remainder = s3_h.as_unsigned() & mask
        threshold = (mask >> 1) + (s3_h < 0)
        s4_r = Signal(signed(n))
        with m.If(en):
            m.d.sync += s4_r.eq((s3_h >> s3_right) + (remainder > threshold))

        # Stage 5: output zero point and clamp.
        y = Signal(signed(n + 1))
        m.d.comb += y.eq(s4_r + self.zero_point)
        with m.If(en):
            with m.If(y < self.act_min):
                m.d.sync += self.o.payload.eq(self.act_min)
            with m.Elif(y > self.act_max):
                m.d.sync += self.o.payload.eq(self.act_max)
            with m.Else():
                m.d.sync += self.o.payload.eq(y)

        return m
