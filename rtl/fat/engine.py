"""FAT: a ternary-weight in-memory-computing subarray with a Sparse Addition Control Unit.

After Zhu, Duong, Chen, Liu, Liu, "FAT: An In-Memory Accelerator With Fast Addition
for Ternary Weight Neural Networks", IEEE TCAD 2022 (arXiv 2201.07634).

Data mapping (Combined-Stationary, see rtl/fat/mapper.py): every column holds the
receptive field of one output position, one operand of act_bits + 1 rows per
input element (bit plane per row, two's complement of u = x - zero_point); the
partial sums stay in the same columns in accumulator regions of acc_bits rows;
ternary weights are streamed. A step senses rows into per-column sense amplifiers
that produce sum and carry at once and writes the sum back to a row.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from rtl.common.ports import int8_engine_ports
from rtl.requant.requantizer import Requantizer
from rtl.fat.config import STATS, Code, FatConfig, Op


class FatEngine(wiring.Component):
    """FAT subarray + SACU + readout + shared requantizer.

    Ports
    -----
    i : In(stream)   commands (``FatConfig.cmd_layout``):
        LOAD    write ``data[:cols]`` to row ``addr`` (1 cycle)
        CLEAR   zero the accumulator at rows ``addr ..`` (acc_bits cycles)
        WEIGHTS accumulate ``cnt`` ternary weights (2-bit codes in ``data``) into the
                accumulator at ``aux``, weight j using the operand in slot ``addr + j``
                (rows ``(addr + j) * op_bits ..``); the SACU skips zero weights in
                "fat" mode at no cost; each non-zero weight is a bit-serial add (+1)
                or subtract (-1: inverted operand, carry-in 1)
        READ    sense the accumulator at ``addr`` (acc_bits cycles), then emit its
                first ``aux`` columns, plus ``bias``, through the requantizer with
                (``mult``, ``shift``) while the array goes on with later commands
    o : Out(stream)  int8 results, column order, one per cycle when flowing
    zero_point, act_min, act_max : In  requantizer statics
    stat_* : Out(32)  counters of array operations (``rtl.fat.config.STATS``)
    """

    def __init__(self, config: FatConfig | None = None):
        self._config = cfg = config or FatConfig()
        super().__init__(int8_engine_ports(cfg.cmd_layout(), STATS))

    @property
    def config(self) -> FatConfig:
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        C, B, A, W = cfg.cols, cfg.acc_bits, cfg.op_bits, cfg.word_weights
        fat_steps = cfg.mode in ("fat", "dense")
        ones = Const((1 << C) - 1, unsigned(C))
        # A row of the subarray: the block RAM's address width (10 bits for 1,024 rows); every
        # row register, sum and compare below is that wide (the array wraps rows modulo 2**R,
        # as its address port always did), so no register carries bits no row can set.
        R = max(1, (cfg.rows - 1).bit_length())

        # The subarray: synchronous-read ports (block RAM: ECP5 DP16KD), each addressed one
        # cycle ahead with the rows the state machine will step on in the next cycle; the
        # write is registered (a step's sum is written in the following cycle), and the
        # reads see it through the bypass below, so every step reads the rows as a
        # combinational array would: same steps, same cycles as the cycle model.
        m.submodules.mem = mem = Memory(shape=unsigned(C), depth=cfg.rows, init=[])
        ports = {"acc": mem.read_port(), "op": mem.read_port()}
        if not fat_steps:
            ports["car"] = mem.read_port()  # parapim keeps its carry in a row
        wr = mem.write_port()
        nz = Signal(cfg.rows)  # per row: some column holds a 1 (set when the row is loaded)

        m.submodules.rq = rq = Requantizer(cfg.requant)
        wiring.connect(m, rq.o, wiring.flipped(self.o))
        m.d.comb += [rq.zero_point.eq(self.zero_point), rq.act_min.eq(self.act_min), rq.act_max.eq(self.act_max)]

        stats = {name: Signal(32, name=f"n_{name}") for name in STATS}
        for name, sig in stats.items():
            m.d.comb += getattr(self, f"stat_{name}").eq(sig)

        def count(name, amount=1):
            m.d.sync += stats[name].eq(stats[name] + amount)

        cmd = self.i.payload
        # ---- SACU state ----------------------------------------------------------------
        # Registers that address the array (bit, acc_base, op_base, carry, inv, cur) and the
        # SACU's lookahead (mask, rest, first_row, code, more, last) are assigned through
        # their next values (``nxt``): the read ports take the rows of the next cycle from
        # them. The lookahead holds what the next issue needs, computed from registers a
        # cycle or more before it: rest = mask without its lowest set bit, first_row and
        # code = the first operand row and the code of mask's lowest weight, more = some
        # weight left, last = bit == acc_bits - 1 (an operation's last step).
        codes = Signal(2 * W)
        mask = Signal(W)  # weights still to issue
        rest = Signal(W)  # mask without its lowest set bit (mask after the next issue)
        first_row = Signal(R)  # first operand row of mask's lowest weight (set by an issue)
        code = Signal(2)  # code of mask's lowest weight
        more = Signal()  # mask != 0
        last = Signal()  # bit == B - 1
        slot0_row = Signal(R)  # first operand row of the WEIGHTS word (slot0 * op_bits)
        acc_base = Signal(R)  # accumulator base row (WEIGHTS, CLEAR, READ)
        op_base = Signal(R)  # first row of the current operand
        inv = Signal()  # subtract: inverted operand, carry-in 1
        zero_op = Signal()  # a zero weight processed as an add of 0 (dense / parapim)
        bit = Signal(range(B + 1))
        carry = Signal(C)
        phase = Signal()  # parapim: 0 = carry step, 1 = sum step
        cur = Signal()  # parapim: which carry row holds the carry in
        nxt = {}
        for reg in (bit, acc_base, op_base, carry, inv, cur, mask, rest, first_row, code, more, slot0_row):
            nxt[reg.name] = Signal.like(reg, name=f"{reg.name}_next")
            m.d.comb += nxt[reg.name].eq(reg)
            m.d.sync += reg.eq(nxt[reg.name])
        m.d.sync += last.eq(nxt["bit"] == B - 1)

        def upd(reg, value):
            m.d.comb += nxt[reg.name].eq(value)

        # The rows a step reads and writes, kept as registers next to bit (bitskip computes
        # its rows from its search instead): acc_row = acc_base + bit, op_row = op_base +
        # min(bit, op_bits - 1), op_sat = bit >= op_bits - 1. The state machine moves bit
        # with restart() (to 0, acc_base and op_base taking their next values) and advance()
        # (bit + 1).
        acc_row, acc_row_next = Signal(R, name="acc_row"), Signal(R, name="acc_row_next")
        op_row, op_row_next = Signal(R, name="op_row"), Signal(R, name="op_row_next")
        op_sat, op_sat_next = Signal(name="op_sat"), Signal(name="op_sat_next")
        restarting, advancing = Signal(name="restarting"), Signal(name="advancing")
        m.d.sync += [acc_row.eq(acc_row_next), op_row.eq(op_row_next), op_sat.eq(op_sat_next)]
        m.d.comb += [acc_row_next.eq(acc_row), op_row_next.eq(op_row), op_sat_next.eq(op_sat)]
        with m.If(restarting):
            m.d.comb += [acc_row_next.eq(nxt["acc_base"]), op_row_next.eq(nxt["op_base"]),
                         op_sat_next.eq(A == 1)]
        with m.Elif(advancing):
            m.d.comb += [acc_row_next.eq(acc_row + 1), op_row_next.eq(op_row + ~op_sat),
                         op_sat_next.eq(bit + 1 >= A - 1)]

        def restart():
            upd(bit, 0)
            m.d.comb += restarting.eq(1)

        def advance():
            upd(bit, bit + 1)
            m.d.comb += advancing.eq(1)

        # ---- readout state -------------------------------------------------------------
        tbuf = Signal(B * C)
        obuf = Signal(B * C)
        rd_cols = Signal(16)
        rd_params = Signal(cfg.read_layout())
        em_params = Signal(cfg.read_layout())
        em_cols = Signal(16)
        em_col = Signal(16)
        em_busy = Signal()

        def lowest_of(v):
            """The lowest set bit of v, one-hot, in logic (v & -v would be an adder, which
            Yosys shares between the loads of the SACU, with the state's mux in front)."""
            lowest = Signal(W, name="lowest")
            m.d.comb += lowest.eq(Cat(v[k] & ~v[:k].any() if k else v[0] for k in range(W)))
            return lowest

        def row_of(lowest, slot0_v):
            """The first row of the weight ``lowest`` (one-hot), slot0 + j * op_bits: an
            AND-OR over the one-hot bit, no multiplier."""
            j_rows = Const(0, R)
            for k in range(1, W):
                j_rows = j_rows | Mux(lowest[k], Const((k * A) % (1 << R), R), 0)
            return (slot0_v + j_rows)[:R]

        # The rows an issue needs, from registers without an add behind the decision (and in
        # registers of their own, so that Yosys does not share their adders with the
        # state's multiplexer in front): word_row / word_row2, the first rows of the lowest
        # two weights of the command offered on ``i`` (registered in every cycle: the ISSUE
        # after a WEIGHTS word reads them), and next_row, the first row of rest's lowest
        # weight (the one after the next issue) from registers in every cycle; it lags rest
        # by a cycle, so an issue that follows another within two cycles (bitskip only)
        # computes the row itself.
        codes_in = cmd.data[:2 * W]
        live = Signal(W)  # the word's weights to issue (fat: only +1 / -1; the baselines: all)
        nonzero_in = [(codes_in.word_select(k, 2) == Code.PLUS) | (codes_in.word_select(k, 2) == Code.MINUS)
                      for k in range(W)]
        m.d.comb += live.eq(Cat((nonzero_in[k] if cfg.mode == "fat" else Const(1)) & (k < cmd.cnt) for k in range(W)))
        slot0_in = (cmd.addr[:R] * A)[:R]
        live_lowest = lowest_of(live)
        word_row, word_row2 = Signal(R, name="word_row"), Signal(R, name="word_row2")
        next_row = Signal(R, name="next_row")
        m.d.sync += [word_row.eq(row_of(live_lowest, slot0_in)),
                     word_row2.eq(row_of(lowest_of(live & ~live_lowest), slot0_in)),
                     next_row.eq(row_of(lowest_of(rest), slot0_row))]
        # bitskip reads the operand's bit planes (``nz``) by slot, not by row (a word select
        # instead of a shift by any row): the slots of the issues alongside their rows
        slot0, word_slot, word_slot2, first_slot = (Signal(16, name="slot0"), Signal(16, name="word_slot"),
                                                     Signal(16, name="word_slot2"), Signal(16, name="first_slot"))
        issue_slot = Signal(16, name="issue_slot")  # the slot an issue starts (comb)

        def slot_of(lowest, base):
            j = Const(0, 16)
            for k in range(1, W):
                j = j | Mux(lowest[k], k, 0)
            return base + j
        if cfg.bitskip:
            m.d.sync += [word_slot.eq(slot_of(live_lowest, cmd.addr)),
                         word_slot2.eq(slot_of(lowest_of(live & ~live_lowest), cmd.addr))]

        def load_mask(mask_v, codes_v):
            """Load the SACU with the weights mask_v (and the code of its lowest)."""
            lowest = lowest_of(mask_v)
            code_v = Const(0, 2)
            for k in range(W):
                code_v = code_v | Mux(lowest[k], codes_v.word_select(k, 2), 0)
            upd(mask, mask_v)
            upd(rest, mask_v & ~lowest)
            upd(code, code_v)
            upd(more, mask_v.any())

        # ---- the array's ports: writes one cycle late, reads addressed one cycle ahead ---
        # The bypass compares registers only: the row a port reads in this cycle (r_addr,
        # its address of the last cycle) against the writes of the last two cycles (wq: the
        # array writes it now, so the port read the old row; wq2: written a cycle ago, while
        # the port's address was taken).
        w_addr, w_data, w_en = (Signal(R, name="w_addr"), Signal(C, name="w_data"),
                                Signal(name="w_en"))  # this cycle's write (a step's sum)
        wq_addr, wq_data, wq_en = (Signal(R, name="wq_addr"), Signal(C, name="wq_data"),
                                   Signal(name="wq_en"))  # written to the array now
        wq2_addr, wq2_data, wq2_en = (Signal(R, name="wq2_addr"), Signal(C, name="wq2_data"),
                                      Signal(name="wq2_en"))  # written in the last cycle
        w_next = Signal(C)  # wq_data's next value: w_data, or a step's sum
        w_sum = Signal()  # a FAT step: the sum is written
        m.d.comb += w_next.eq(w_data)
        m.d.sync += [wq_addr.eq(w_addr), wq_data.eq(w_next), wq_en.eq(w_en),
                     wq2_addr.eq(wq_addr), wq2_data.eq(wq_data), wq2_en.eq(wq_en)]
        m.d.comb += [wr.addr.eq(wq_addr), wr.data.eq(wq_data), wr.en.eq(wq_en)]
        rows = {}  # each port's row in this cycle, as a combinational array would read it
        next_addr = {}  # each port's row in the next cycle
        bypass = {}  # each port's (bypass hit, bypassed row, array's row)
        for name, port in ports.items():
            a_next = next_addr[name] = Signal(R, name=f"{name}_row_next")
            n = len(port.addr)
            assert n == R, (n, R)
            r_addr = Signal(n, name=f"{name}_r_addr")  # the row read in this cycle
            m.d.comb += port.addr.eq(a_next)
            m.d.sync += r_addr.eq(a_next[:n])
            hit_w = Signal(name=f"{name}_hit_w")
            hit_q = Signal(name=f"{name}_hit_q")
            m.d.comb += [hit_w.eq(wq_en & (wq_addr[:n] == r_addr)), hit_q.eq(wq2_en & (wq2_addr[:n] == r_addr))]
            # the bypass decided from registers (kept: one LUT after the array's row)
            hit = Signal(name=f"{name}_hit", attrs={"keep": 1})
            byp = Signal(C, name=f"{name}_bypassed", attrs={"keep": 1})
            m.d.comb += [hit.eq(hit_w | hit_q), byp.eq(Mux(hit_w, wq_data, wq2_data))]
            rows[name] = Signal(C, name=f"{name}_row")
            m.d.comb += rows[name].eq(Mux(hit, byp, port.data))
            bypass[name] = (hit, byp, port.data)

        # Operand bit planes of the current slot, and the bit-level-sparsity search.
        planes_nz = Signal(A)

        def first_bit(start, c_vec, inv_bit, planes):
            """(found, t): next bit >= start whose step can change the accumulator.

            Below A a plane that is all zero leaves the result unchanged when every
            carry equals the (inverted) operand bit. From A on the operand is its sign
            extension; the step that reached A already checked that some carry differs
            from its sign (otherwise the operation ended there), so the step is needed.
            """
            eq_inv = c_vec == Mux(inv_bit, ones, 0)
            found = Signal(name="skip_found")
            t = Signal(range(B + 1), name="skip_t")
            m.d.comb += [found.eq(0), t.eq(start)]
            with m.If(start >= A):
                m.d.comb += found.eq(start < B)
            with m.Else():
                for b in reversed(range(A)):
                    with m.If((b >= start) & (planes[b] | ~eq_inv)):
                        m.d.comb += [found.eq(1), t.eq(b)]
            return found, t

        # ---- datapath of one FAT step --------------------------------------------------
        a_vec = rows["acc"]
        o_vec = rows["op"] ^ Mux(inv, ones, 0)
        if cfg.mode != "fat":  # the SACU of "fat" issues no zero weight
            o_vec = Mux(zero_op, 0, o_vec)
        c_in = carry if fat_steps else rows["car"]
        s_vec = a_vec ^ o_vec ^ c_in
        c_out = Signal(C)
        m.d.comb += c_out.eq((a_vec & o_vec) | (a_vec & c_in) | (o_vec & c_in))

        def late_rows(f, name):
            """f(a_vec, o_vec) with the array's rows entering last.

            The block RAM's outputs arrive late (ECP5 DP16KD: 5.8 ns clock to out); so f is
            evaluated on each of the four values an (accumulator, operand) bit pair can
            take, from the early signals (bypass, inv, carry, state), and the rows only
            select among the four (one LUT level after the RAM)."""
            a_hit, a_byp, x = bypass["acc"]
            o_hit, o_byp, y = bypass["op"]
            table = {}
            for xv in (0, 1):
                for yv in (0, 1):
                    a_v = Mux(a_hit, a_byp, ones if xv else 0)
                    o_v = Mux(o_hit, o_byp, ones if yv else 0) ^ Mux(inv, ones, 0)
                    if cfg.mode != "fat":
                        o_v = Mux(zero_op, 0, o_v)
                    t = table[xv, yv] = Signal(C, name=f"{name}_if_{xv}{yv}", attrs={"keep": 1})
                    m.d.comb += t.eq(f(a_v, o_v))
            return (x & ((y & table[1, 1]) | (~y & table[1, 0]))) | (~x & ((y & table[0, 1]) | (~y & table[0, 0])))

        def start_op(row_now, row_after, slot_now=None, slot_after=None):
            """Issue mask's lowest weight: load the operation, then go to its first step.
            row_now: its operand's first row; row_after: the first row of the weight after
            it (rest's lowest); the same as slots for bitskip."""
            if cfg.bitskip:
                m.d.comb += issue_slot.eq(slot_now)
                m.d.sync += first_slot.eq(slot_after)
            m.d.sync += [
                zero_op.eq((code == Code.ZERO) | (code == Code.INVALID)),
                phase.eq(0),
            ]
            load_mask(rest, codes)
            upd(first_row, row_after)
            upd(op_base, row_now)
            m.d.comb += starting.eq(1)
            upd(inv, code == Code.MINUS)
            upd(carry, Mux(code == Code.MINUS, ones, 0))  # carry-in 1 for subtract
            restart()
            if cfg.bitskip:
                m.d.comb += stepping.eq(1)
            with m.If(code == Code.MINUS):
                count("subs")
            with m.Elif(code == Code.PLUS):
                count("adds")
            with m.Else():
                count("zero_ops")

        busy = Signal()
        starting = Signal()  # an operation starts: the next cycle is its first step
        if cfg.bitskip:
            # The search runs a cycle ahead on the next cycle's bit, carry and planes; the
            # step uses its registered result (found_r, t_r).
            planes_next = Signal(A)
            m.d.comb += planes_next.eq(Mux(starting, nz.word_select(issue_slot, A), planes_nz))
            m.d.sync += planes_nz.eq(planes_next)
            found_n, t_n = first_bit(nxt["bit"], nxt["carry"], nxt["inv"], planes_next)
            found_r, t_r = Signal(name="found_r"), Signal(range(B + 1), name="t_r")
            m.d.sync += [found_r.eq(found_n), t_r.eq(t_n)]
            stepping = Signal()  # the next cycle is a step (else READ's rows are plain bits)
            row_bit = Mux(stepping, t_n, nxt["bit"])
            m.d.comb += [next_addr["acc"].eq(nxt["acc_base"] + row_bit),
                         next_addr["op"].eq(nxt["op_base"] + Mux(row_bit < A, row_bit, A - 1))]
        else:
            # The rows of the next step are registers' next values: no add after the
            # decision to advance, restart or start an operation.
            m.d.comb += [next_addr["acc"].eq(acc_row_next), next_addr["op"].eq(op_row_next)]
        if not fat_steps:
            m.d.comb += next_addr["car"].eq(Mux(nxt["cur"], cfg.carry_rows[1], cfg.carry_rows[0]))

        first_state = "STEP" if fat_steps else "PINIT"
        # an issue from a step
        issue_after_step = ((first_row, row_of(lowest_of(rest), slot0_row), first_slot, slot_of(lowest_of(rest), slot0))
                            if cfg.bitskip else (first_row, next_row))
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    with m.Switch(cmd.op):
                        with m.Case(Op.LOAD):
                            m.d.comb += [w_addr.eq(cmd.addr), w_data.eq(cmd.data[:C]), w_en.eq(1), busy.eq(1)]
                            m.d.sync += nz.bit_select(cmd.addr, 1).eq(cmd.data[:C] != 0)
                            count("row_writes")
                        with m.Case(Op.CLEAR):
                            upd(acc_base, cmd.addr)
                            restart()
                            m.next = "CLEAR"
                        with m.Case(Op.WEIGHTS):
                            bad = Cat((codes_in.word_select(k, 2) == Code.INVALID) & (k < cmd.cnt)
                                      for k in range(W))
                            m.d.sync += codes.eq(codes_in)
                            load_mask(live, codes_in)
                            upd(slot0_row, slot0_in)
                            if cfg.bitskip:
                                m.d.sync += slot0.eq(cmd.addr)
                            upd(acc_base, cmd.aux)
                            restart()
                            # every invalid code in the word counts (as the cycle model and the
                            # docs say), not the word once
                            with m.If(bad.any()):
                                count("errors", sum(bad[k] for k in range(W)))
                            with m.If(live.any()):
                                m.next = "ISSUE"
                        with m.Case(Op.READ):
                            m.d.sync += [rd_cols.eq(cmd.aux), rd_params.eq(cmd.data[:70])]
                            upd(acc_base, cmd.addr)
                            restart()
                            m.next = "READ"

            with m.State("CLEAR"):
                m.d.comb += [w_addr.eq(acc_row), w_data.eq(0), w_en.eq(1), busy.eq(1)]
                count("row_writes")
                advance()
                with m.If(last):
                    m.next = "IDLE"

            with m.State("ISSUE"):
                # The SACU issues the next weight; zero weights never get here in fat mode.
                start_op(word_row, word_row2, word_slot, word_slot2)
                m.next = first_state

            if fat_steps:
                with m.State("STEP"):
                    if cfg.bitskip:
                        # Jump straight to the next bit whose step can change anything.
                        with m.If(~found_r):  # every plane left is zero, every carry matches
                            count("skipped_bits", B - bit)
                            self._op_done(m, more, start_op, first_state, issue_after_step)
                        with m.Else():
                            self._fat_step(m, acc_base + t_r, w_sum, c_out, (w_addr, w_data, w_en), busy,
                                           count)
                            step_next = Signal(range(B + 2))
                            m.d.comb += step_next.eq(t_r + 1)
                            upd(bit, step_next)
                            m.d.comb += stepping.eq(1)
                            # Done now when nothing above can change: at or past the sign
                            # plane every carry must equal that column's operand sign.
                            finished = (step_next == B) | ((step_next >= A) & (c_out == o_vec))
                            count("skipped_bits", (t_r - bit) + Mux(finished, B - step_next, 0))
                            with m.If(finished):
                                self._op_done(m, more, start_op, first_state, issue_after_step)
                    else:
                        self._fat_step(m, acc_row, w_sum, c_out, (w_addr, w_data, w_en), busy, count)
                        advance()
                        with m.If(last):
                            self._op_done(m, more, start_op, first_state, issue_after_step)
            else:
                with m.State("PINIT"):
                    # ParaPIM keeps the carry in a row: write the carry-in first.
                    m.d.comb += [w_addr.eq(Mux(cur, cfg.carry_rows[1], cfg.carry_rows[0])),
                                 w_data.eq(Mux(inv, ones, 0)), w_en.eq(1), busy.eq(1)]
                    count("row_writes")
                    m.next = "PSTEP"
                with m.State("PSTEP"):
                    m.d.comb += busy.eq(1)
                    count("steps")
                    count("row_reads", 3)
                    count("row_writes")
                    with m.If(phase == 0):  # carry step: new carry to the other carry row
                        m.d.comb += [w_addr.eq(Mux(cur, cfg.carry_rows[0], cfg.carry_rows[1])),
                                     w_data.eq(c_out), w_en.eq(1)]
                        m.d.sync += phase.eq(1)
                    with m.Else():  # sum step
                        m.d.comb += [w_addr.eq(acc_row), w_data.eq(s_vec), w_en.eq(1)]
                        m.d.sync += phase.eq(0)
                        upd(cur, ~cur)
                        advance()
                        with m.If(last):
                            self._op_done(m, more, start_op, first_state, issue_after_step)

            with m.State("READ"):
                m.d.comb += busy.eq(1)
                # shifts in from the top: the array's row drives one register per column
                m.d.sync += tbuf.eq(Cat(tbuf[C:], a_vec))
                advance()
                count("row_reads")
                count("steps")
                with m.If(last):
                    m.next = "HANDOFF"

            with m.State("HANDOFF"):  # give the sensed accumulator to the emitter
                with m.If(~em_busy):
                    m.d.sync += [obuf.eq(tbuf), em_params.eq(rd_params), em_cols.eq(rd_cols), em_col.eq(0),
                                 em_busy.eq(rd_cols != 0)]
                    m.next = "IDLE"

        with m.If(busy):
            count("busy")

        if fat_steps:
            # The array's rows enter the carry latch and the written sum last. The latch takes
            # every cycle's carry out unless an operation starts (its carry-in): it is only
            # read by steps, which follow a start (no enable of its own on the array's path).
            init = Mux(code == Code.MINUS, ones, 0)
            m.d.comb += [
                nxt["carry"].eq(late_rows(lambda a, o: Mux(starting, init, (a & o) | (a & carry) | (o & carry)),
                                          "carry")),
                w_next.eq(late_rows(lambda a, o: Mux(w_sum, a ^ o ^ carry, w_data), "sum")),
            ]

        # ---- emitter: columns -> bias -> requantizer --------------------------------
        # obuf shifts one column down per accepted output, so the column on offer is always
        # column 0: no C-to-1 multiplexer per bit in front of the bias add (the critical path)
        col_val = Signal(signed(B))
        m.d.comb += col_val.eq(Cat(obuf[i * C] for i in range(B)))
        m.d.comb += [
            rq.i.valid.eq(em_busy),
            rq.i.payload.acc.eq(col_val + em_params.bias),
            rq.i.payload.mult.eq(em_params.mult),
            rq.i.payload.shift.eq(em_params.shift),
        ]
        with m.If(rq.i.valid & rq.i.ready):
            m.d.sync += [em_col.eq(em_col + 1), obuf.eq(obuf >> 1)]
            with m.If(em_col == em_cols - 1):
                m.d.sync += em_busy.eq(0)
        return m

    @staticmethod
    def _fat_step(m, row, w_sum, c_out, write, busy, count):
        """One FAT step: sense accumulator and operand rows, write the sum (``w_sum``: computed
        with the rows entering last, see ``late_rows``; the carry latch takes c_out every
        cycle)."""
        w_addr, w_data, w_en = write
        m.d.comb += [w_addr.eq(row), w_sum.eq(1), w_en.eq(1), busy.eq(1)]
        count("steps")
        count("row_reads", 2)
        count("row_writes")
        count("latch_ops")

    def _op_done(self, m, more, start_op, first_state, rows):
        """The operation ends this cycle; the SACU issues the next non-zero weight in
        the same cycle (its lookahead hides the issue), or the word is finished."""
        with m.If(more):
            start_op(*rows)
            m.next = first_state
        with m.Else():
            m.next = "IDLE"
