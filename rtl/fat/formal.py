"""Formal properties of the FAT engine (``rtl.fat.engine``); see rtl/common/formal.py
for how a property is built and docs/formal.md for the results.

Configuration (small, for the solver): 2 columns, 2-bit activations (3-bit
operands), 4-bit accumulators, 16 rows, 4 weights per SACU word, mode "fat" (no bit
skipping). Any command stream, any back-pressure.

``fat.o_hold``
    the stream rule on ``o``; k-induction.
``fat.zero_free``
    a zero weight never costs a cycle (ports only): after a WEIGHTS word with ``nnz``
    non-zero weights among its ``cnt`` the engine is busy (``i.ready`` low) for
    exactly ``1 + nnz * acc_bits`` cycles (0 when nnz = 0), whatever the number of
    zero (or invalid) weights; k-induction, with the cycles left tied to the SACU's
    state, mask and bit counter (white box) as strengthening, with the helper invariants
    of the SACU's lookahead registers (:meth:`FatTop.sacu_lookahead`).
``fat.count``
    in/out counting (:func:`rtl.common.formal.stream_count_checks`): a READ command
    accepted owes ``aux`` outputs (its first ``aux`` columns; any ``aux``, also past
    ``cols``), and exactly that many leave ``o``, under any commands and back-pressure:
    none lost, none duplicated. Strengthening (white box): the outputs owed equal the
    READ being sensed or handed off (``rd_cols``), the emitter's columns left
    (``em_cols - em_col``, with ``em_col < em_cols`` while busy) and the requantizer's
    valid bits; k-induction.
``fat.sacu_order``
    the SACU issues the word's non-zero weights in order, each once (white box on its
    ``mask`` of weights still to issue): a WEIGHTS word loads the mask with exactly
    its non-zero weights below ``cnt``; afterwards the mask only loses bits, one
    per issue and always the lowest; it is empty when the engine is back in IDLE;
    k-induction, with the lookahead's helper invariants.
"""

from __future__ import annotations

from dataclasses import asdict

from amaranth.hdl import Cat, Mux, Signal

from rtl.fat.config import Code, FatConfig, Op
from rtl.fat.engine import FatEngine
from rtl.common.formal import (EngineTop, Property, StreamHoldTop, popcount, state_codes,
                               stream_count_checks)

CONFIG = FatConfig(rows=16, cols=2, act_bits=2, acc_bits=4, mode="fat", word_weights=4)


class FatTop(EngineTop):
    def __init__(self, check: str, config: FatConfig = CONFIG, component=None):
        super().__init__(component if component is not None else FatEngine(config))
        self.check, self.cfg = check, config

    def properties(self, m):
        cfg, d = self.cfg, self.dut
        g = self.enter(m)
        W, B = cfg.word_weights, cfg.acc_bits
        cmd = d.i.payload
        weights = d.i.valid & d.i.ready & (cmd.op == Op.WEIGHTS)
        codes = cmd.data[:2 * W]
        live = Signal(W, name="live")  # the word's non-zero weights below cnt
        m.d.comb += live.eq(Cat(((codes.word_select(k, 2) == Code.PLUS) | (codes.word_select(k, 2) == Code.MINUS))
                                & (k < cmd.cnt) for k in range(W)))
        nnz = Signal(range(W + 1), name="nnz")
        m.d.comb += nnz.eq(sum(live[k] for k in range(W)))
        if self.check == "count":
            state, codes_ = g["fsm_state"], state_codes(g["fsm_state"])
            reading = (state == codes_["READ"]) | (state == codes_["HANDOFF"])
            em_busy, em_cols, em_col = g["em_busy"], g["em_cols"], g["em_col"]
            with m.If(em_busy):
                self.assert_(m, em_col < em_cols, "the emitter past its last column")
            cols_max = (1 << len(cmd.aux)) - 1
            held = (Mux(reading, g["rd_cols"], 0) + Mux(em_busy, em_cols - em_col, 0)
                    + popcount(g["rq.valid"]))
            stream_count_checks(self, m, d.o, incoming=Mux(d.i.valid & d.i.ready & (cmd.op == Op.READ), cmd.aux, 0),
                                held=held, capacity=2 * cols_max + cfg.requant.latency, max_incoming=cols_max)
            return
        if self.check in ("zero_free", "sacu_order"):
            self.sacu_lookahead(m, g)
        if self.check == "zero_free":
            left = Signal(range(1 + W * B + 2), name="busy_left")  # cycles still to be busy
            watching = Signal(name="watching")
            with m.If(weights):
                m.d.sync += [left.eq(nnz * B + 1), watching.eq(nnz != 0)]
            with m.Elif(watching):
                m.d.sync += left.eq(left - 1)
                with m.If(left == 1):
                    m.d.sync += watching.eq(0)
            with m.If(watching):
                self.assert_(m, ~d.i.ready, "i.ready before the word's non-zero weights were done")
            with m.If(self.started & self.past(m, watching & (left == 1))):
                self.assert_(m, d.i.ready, "the word took longer than 1 + nnz * acc_bits cycles")
            # strengthening (white box): the cycles left agree with the SACU's state
            state, codes_ = g["fsm_state"], state_codes(g["fsm_state"])
            issue, step = state == codes_["ISSUE"], state == codes_["STEP"]
            pending = sum(g["mask"][k] for k in range(W)) * B
            self.assert_(m, watching == (issue | step), "watching outside the SACU states")
            with m.If(issue):
                self.assert_(m, left == 1 + pending, "cycles left off in ISSUE")
            with m.If(step):
                self.assert_(m, (left == B - g["bit"] + pending) & (g["bit"] < B), "cycles left off in STEP")
            return
        mask = g["mask"]
        was = self.past(m, mask, name="past_mask")
        loaded = self.past(m, weights, name="past_weights")
        loaded_live = self.past(m, live, name="past_live")
        with m.If(self.started & loaded):
            self.assert_(m, mask == loaded_live, "the SACU mask is not the word's non-zero weights")
        gone = Signal(W, name="issued")
        m.d.comb += gone.eq(was & ~mask)
        with m.If(self.started & ~loaded):
            self.assert_(m, (mask & ~was) == 0, "a weight came back into the SACU mask")
            self.assert_(m, (gone & (gone - 1)) == 0, "more than one weight issued in a cycle")
            self.assert_(m, (gone == 0) | (gone == (was & (~was + 1))[:W]),
                         "a weight issued before a lower one")
        with m.If(d.i.ready):
            self.assert_(m, mask == 0, "back in IDLE with weights not issued")
        # strengthening: the mask is empty outside the SACU's states, and only ever holds
        # non-zero weights of the stored codes
        states = state_codes(g["fsm_state"])
        in_sacu = (g["fsm_state"] == states["ISSUE"]) | (g["fsm_state"] == states["STEP"])
        self.assert_(m, in_sacu | (mask == 0), "weights left in the SACU mask outside ISSUE/STEP")
        stored = g["codes"]
        nz = Cat((stored.word_select(k, 2) == Code.PLUS) | (stored.word_select(k, 2) == Code.MINUS)
                 for k in range(W))
        self.assert_(m, (mask & ~nz) == 0, "a zero weight in the SACU mask")

    def sacu_lookahead(self, m, g):
        """Helper invariants (white box) of the SACU's lookahead registers, which decide an
        issue a cycle ahead: without them the induction step starts from states where they
        disagree with mask and bit. last = the bit counter at an operation's last step;
        rest = mask without its lowest set bit; more = some weight left in mask."""
        mask = g["mask"]
        self.assert_(m, g["last"] == (g["bit"] == self.cfg.acc_bits - 1), "last is not bit == acc_bits - 1")
        self.assert_(m, g["rest"] == (mask & (mask - 1))[:len(mask)], "rest is not mask without its lowest bit")
        self.assert_(m, g["more"] == mask.any(), "more is not mask != 0")


PROPERTIES = [
    Property("fat.o_hold", "fat", "o: valid & ~ready holds valid and payload to the next cycle (any commands, "
             "any back-pressure)", lambda: StreamHoldTop(lambda: FatEngine(CONFIG)), "prove", 2, asdict(CONFIG)),
    Property("fat.count", "fat", "each READ accepted owes aux outputs and exactly that many leave o (in/out "
             "counting; held = READ in flight + emitter columns left + requantizer valid bits), any commands, any "
             "back-pressure", lambda: FatTop("count"), "prove", 2, asdict(CONFIG)),
    Property("fat.zero_free", "fat", "a WEIGHTS word with nnz non-zero weights keeps the engine busy exactly "
             "1 + nnz * acc_bits cycles (0 if nnz = 0), whatever its zero weights",
             lambda: FatTop("zero_free"), "prove", 3, asdict(CONFIG)),
    Property("fat.sacu_order", "fat", "the SACU mask gets exactly the word's non-zero weights, then loses one "
             "bit per issue, always the lowest, and is empty back in IDLE",
             lambda: FatTop("sacu_order"), "prove", 3, asdict(CONFIG)),
]
