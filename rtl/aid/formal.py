"""Formal properties of the AID controller (``rtl.aid.controller``); see
rtl/common/formal.py for how a property is built and docs/formal.md for the results.

Configurations: the default (unit_cycles 1, precharge 6, settle 1) and one with
2-cycle unit pulses (unit_cycles 2, precharge 3, settle 0). Any operands, any ADC
answer time (``adc_done`` free), any back-pressure. Everything is observed on the
ports.

``aid.o_hold``
    the stream rule on ``o``.
``aid.pulses``
    word-line row i is high for exactly 2**i * unit_cycles consecutive cycles each
    time it pulses, never longer, and all rows rise together.
``aid.count``
    in/out counting (:func:`rtl.common.formal.stream_count_checks`): each accepted
    operation leaves ``o`` exactly once, under any back-pressure and ADC answer time; at
    most one owed (the controller takes one operation at a time); strengthening: the
    count owed is 1 exactly outside IDLE (white box); k-induction.
``aid.order``
    write, then precharge (exactly precharge_cycles), then evaluate (word lines rise
    in the first cycle after precharge, never with precharge, the write or the ADC
    request), then one ``adc_start`` exactly 8 * unit_cycles + settle_cycles cycles
    after precharge ends, then ``o.valid`` only once the ADC has answered. The
    strengthening that makes it inductive reads the FSM state and phase counter
    (white box): waiting for the ADC implies it was asked, the output state implies
    it answered, and the counter agrees with the monitor's in each phase.

All k-induction (k longer than the longest pulse where counting is involved).
"""

from __future__ import annotations

from dataclasses import asdict

from amaranth.hdl import Signal

from rtl.aid.config import AidControllerConfig
from rtl.aid.controller import AidController
from rtl.common.formal import FormalTop, Property, elaborated, state_codes, stream_count_checks, stream_out_checks

CONFIG = AidControllerConfig()
CONFIG_UNIT2 = AidControllerConfig(unit_cycles=2, precharge_cycles=3, settle_cycles=0)


class AidTop(FormalTop):
    def __init__(self, check: str, config: AidControllerConfig = CONFIG, component=None):
        super().__init__()
        self.check, self.cfg = check, config
        self.dut = component if component is not None else AidController(config)
        d = self.dut
        self.free(d.i.valid, d.i.payload, d.o.ready, d.adc_done, d.adc_data)

    def properties(self, m):
        cfg, d = self.cfg, self.dut
        frag, g = elaborated(d)
        m.submodules.dut = frag
        if self.check == "hold":
            stream_out_checks(self, m, d.o)
            return
        if self.check == "count":
            state, codes = g["fsm_state"], state_codes(g["fsm_state"])
            stream_count_checks(self, m, d.o, incoming=d.i.valid & d.i.ready, held=state != codes["IDLE"],
                                capacity=1)
            return
        eval_len = 8 * cfg.unit_cycles
        if self.check == "pulses":
            rose = d.wl & ~self.past(m, d.wl, name="past_wl")
            with m.If(self.started & rose.any()):
                self.assert_(m, rose == 0b1111, "word lines rose apart")
            for row in range(4):
                width = cfg.unit_cycles << row
                run = Signal(range(width + 2), name=f"run{row}")  # consecutive high cycles so far
                with m.If(d.wl[row]):
                    m.d.sync += run.eq(run + (run <= width))
                with m.Else():
                    m.d.sync += run.eq(0)
                with m.If(d.wl[row]):
                    self.assert_(m, run < width, f"word line {row} high longer than its pulse")
                with m.If(~d.wl[row] & (run != 0)):
                    self.assert_(m, run == width, f"word line {row} pulse shorter than 2**{row} units")
            return
        # order
        wl = d.wl.any()
        self.assert_(m, ~(d.pre & wl) & ~(d.pre & d.adc_start) & ~(wl & d.adc_start) & ~(d.wr & (d.pre | wl)),
                     "two phases at once")
        pre_was = self.past(m, d.pre, name="past_pre")
        pre_run = Signal(range(cfg.precharge_cycles + 2), name="pre_run")
        with m.If(d.pre):
            m.d.sync += pre_run.eq(pre_run + (pre_run <= cfg.precharge_cycles))
        with m.Else():
            m.d.sync += pre_run.eq(0)
        with m.If(d.pre):
            self.assert_(m, pre_run < cfg.precharge_cycles, "precharge too long")
        with m.If(~d.pre & (pre_run != 0)):
            self.assert_(m, pre_run == cfg.precharge_cycles, "precharge too short")
        wr_was = self.past(m, d.wr, name="past_wr")
        with m.If(self.started & d.pre & ~pre_was):
            self.assert_(m, wr_was, "precharge not right after the write")
        first_eval = self.started & pre_was & ~d.pre
        since = Signal(range(eval_len + cfg.settle_cycles + 3), name="since_precharge")
        with m.If(first_eval):
            m.d.sync += since.eq(1)
        with m.Elif((since != 0) & (since <= eval_len + cfg.settle_cycles)):
            m.d.sync += since.eq(since + 1)
        with m.Else():
            m.d.sync += since.eq(0)
        wl_rose = wl & ~self.past(m, wl, name="past_any_wl")
        with m.If(self.started & wl_rose):
            self.assert_(m, first_eval, "word lines rose other than right after precharge")
        with m.If(wl & ~first_eval):
            self.assert_(m, (since != 0) & (since < eval_len), "word lines outside evaluate")
        with m.If(d.adc_start):
            self.assert_(m, (since == eval_len + cfg.settle_cycles) | (first_eval & (eval_len + cfg.settle_cycles
                                                                                     == 0)),
                         "ADC request not exactly 8 units + settle after precharge")
        requested, answered = Signal(name="requested"), Signal(name="answered")
        with m.If(d.i.valid & d.i.ready):
            m.d.sync += [requested.eq(0), answered.eq(0)]
        with m.If(d.adc_start):
            m.d.sync += requested.eq(1)
        with m.If(requested & d.adc_done):
            m.d.sync += answered.eq(1)
        with m.If(d.o.valid):
            self.assert_(m, answered, "output before the ADC answered")
        # strengthening (white box): waiting for the ADC means it was asked
        state, codes = g["fsm_state"], state_codes(g["fsm_state"])
        with m.If((state == codes["WAIT_ADC"]) | (state == codes["OUTPUT"])):
            self.assert_(m, requested, "waiting for an ADC answer never requested")
        with m.If(state == codes["OUTPUT"]):
            self.assert_(m, answered, "output state without an ADC answer")
        # ... and the phase counter agrees with the monitor's
        count = g["count"]
        with m.If(state == codes["PRECHARGE"]):
            self.assert_(m, (count == pre_run) & (count < cfg.precharge_cycles), "precharge count off")
        with m.If(state == codes["EVALUATE"]):
            self.assert_(m, (count == since) & (count < eval_len), "evaluate count off")
        if cfg.settle_cycles:
            with m.If(state == codes["SETTLE"]):
                self.assert_(m, (since == eval_len + count) & (count < cfg.settle_cycles), "settle count off")


def _props(tag: str, cfg: AidControllerConfig) -> list[Property]:
    c = asdict(cfg)
    depth = 8 * cfg.unit_cycles + 4  # k: longer than the longest pulse
    return [
        Property(f"aid.o_hold{tag}", "aid", "o: valid & ~ready holds valid and payload to the next cycle",
                 lambda: AidTop("hold", cfg), "prove", 2, c),
        Property(f"aid.count{tag}", "aid", "each accepted operation leaves o exactly once (in/out counting, at "
                 "most 1 owed), any back-pressure and ADC answer time", lambda: AidTop("count", cfg), "prove", 2, c),
        Property(f"aid.pulses{tag}", "aid", "word-line row i high exactly 2**i * unit_cycles consecutive cycles "
                 "per pulse, rows rising together", lambda: AidTop("pulses", cfg), "prove", depth, c),
        Property(f"aid.order{tag}", "aid", "write, precharge (exact length), evaluate right after, one ADC request "
                 "exactly 8 units + settle later, output only after the ADC answered",
                 lambda: AidTop("order", cfg), "prove", depth, c),
    ]


PROPERTIES = _props("", CONFIG) + _props("_unit2", CONFIG_UNIT2)
