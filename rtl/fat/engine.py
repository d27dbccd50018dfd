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
        # Registers that address the array (bit, acc_base, op_base, carry, inv, cur, and
        # mask, slot0_row, from which the next operand row is registered) are
        # assigned through their next values (``nxt``): the read ports take the rows of the
        # next cycle from them.
        codes = Signal(2 * W)
        mask = Signal(W)  # weights still to issue
        slot0_row = Signal(16 + 8)  # first operand row of the WEIGHTS word (slot0 * op_bits)
        acc_base = Signal(16)  # accumulator base row (WEIGHTS, CLEAR, READ)
        op_base = Signal(16 + 8)  # first row of the current operand
        inv = Signal()  # subtract: inverted operand, carry-in 1
        zero_op = Signal()  # a zero weight processed as an add of 0 (dense / parapim)
        bit = Signal(range(B + 1))
        carry = Signal(C)
        phase = Signal()  # parapim: 0 = carry step, 1 = sum step
        cur = Signal()  # parapim: which carry row holds the carry in
        nxt = {}
        for reg in (bit, acc_base, op_base, carry, inv, cur, mask, slot0_row):
            nxt[reg.name] = Signal.like(reg, name=f"{reg.name}_next")
            m.d.comb += nxt[reg.name].eq(reg)
            m.d.sync += reg.eq(nxt[reg.name])

        def upd(reg, value):
            m.d.comb += nxt[reg.name].eq(value)

        # ---- readout state -------------------------------------------------------------
        tbuf = Signal(B * C)
        obuf = Signal(B * C)
        rd_cols = Signal(16)
        rd_params = Signal(cfg.read_layout())
        em_params = Signal(cfg.read_layout())
        em_cols = Signal(16)
        em_col = Signal(16)
        em_busy = Signal()

        # Priority encoder: the next weight to issue (lowest set bit of mask).
        j = Signal(range(W))
        for k in reversed(range(W)):
            with m.If(mask[k]):
                m.d.comb += j.eq(k)
        code_j = codes.word_select(j, 2)
        # The first row of weight j's operand, slot0_row + j * op_bits, without a multiplier
        # (an AND-OR over the one-hot lowest bit of mask), registered from mask's and
        # slot0_row's next values so that it is ready when the weight issues.
        def first_row_of(mask_v, slot0_v):
            lowest = mask_v & (~mask_v + 1)
            j_rows = Const(0, 16)
            for k in range(1, W):
                j_rows = j_rows | Mux(lowest[k], Const(k * A, 16), 0)
            return slot0_v + j_rows
        first_row = Signal(16 + 8)
        m.d.sync += first_row.eq(first_row_of(nxt["mask"], nxt["slot0_row"]))

        # ---- the array's ports: writes one cycle late, reads addressed one cycle ahead ---
        w_addr, w_data, w_en = Signal(16), Signal(C), Signal()  # this cycle's write (a step's sum)
        wq_addr, wq_data, wq_en = Signal(16), Signal(C), Signal()  # written to the array now
        m.d.sync += [wq_addr.eq(w_addr), wq_data.eq(w_data), wq_en.eq(w_en)]
        m.d.comb += [wr.addr.eq(wq_addr), wr.data.eq(wq_data), wr.en.eq(wq_en)]
        rows = {}  # each port's row in this cycle, as a combinational array would read it
        next_addr = {}  # each port's row in the next cycle
        for name, port in ports.items():
            a_next = next_addr[name] = Signal(16, name=f"{name}_row_next")
            hit_w = Signal(name=f"{name}_hit_w")  # the row written in this cycle (now in wq)
            hit_q = Signal(name=f"{name}_hit_q")  # the row the array writes in this cycle
            held = Signal(C, name=f"{name}_held")
            m.d.comb += port.addr.eq(a_next)
            same = lambda addr: addr[:len(port.addr)] == a_next[:len(port.addr)]  # the rows the array sees
            m.d.sync += [hit_w.eq(w_en & same(w_addr)), hit_q.eq(wq_en & same(wq_addr)), held.eq(wq_data)]
            rows[name] = Signal(C, name=f"{name}_row")
            m.d.comb += rows[name].eq(Mux(hit_w, wq_data, Mux(hit_q, held, port.data)))

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
        o_vec = Mux(zero_op, 0, rows["op"] ^ Mux(inv, ones, 0))
        c_in = carry if fat_steps else rows["car"]
        s_vec = a_vec ^ o_vec ^ c_in
        c_out = Signal(C)
        m.d.comb += c_out.eq((a_vec & o_vec) | (a_vec & c_in) | (o_vec & c_in))

        def start_op():
            """Issue weight j: load the operation, then go to its first step."""
            m.d.sync += [
                zero_op.eq((code_j == Code.ZERO) | (code_j == Code.INVALID)),
                phase.eq(0),
            ]
            upd(mask, mask & (mask - 1))  # weight j, the lowest set bit, issued
            upd(op_base, first_row)
            m.d.comb += starting.eq(1)
            upd(inv, code_j == Code.MINUS)
            upd(carry, Mux(code_j == Code.MINUS, ones, 0))  # carry-in 1 for subtract
            upd(bit, 0)
            if cfg.bitskip:
                m.d.comb += stepping.eq(1)
            with m.If(code_j == Code.MINUS):
                count("subs")
            with m.Elif(code_j == Code.PLUS):
                count("adds")
            with m.Else():
                count("zero_ops")

        busy = Signal()
        starting = Signal()  # an operation starts: the next cycle is its first step
        if cfg.bitskip:
            # The search runs a cycle ahead on the next cycle's bit, carry and planes; the
            # step uses its registered result (found_r, t_r).
            planes_next = Signal(A)
            m.d.comb += planes_next.eq(Mux(starting, nz.bit_select(nxt["op_base"], A), planes_nz))
            m.d.sync += planes_nz.eq(planes_next)
            found_n, t_n = first_bit(nxt["bit"], nxt["carry"], nxt["inv"], planes_next)
            found_r, t_r = Signal(), Signal(range(B + 1))
            m.d.sync += [found_r.eq(found_n), t_r.eq(t_n)]
            stepping = Signal()  # the next cycle is a step (else READ's rows are plain bits)
            row_bit = Mux(stepping, t_n, nxt["bit"])
        else:
            row_bit = nxt["bit"]
        m.d.comb += [next_addr["acc"].eq(nxt["acc_base"] + row_bit),
                     next_addr["op"].eq(nxt["op_base"] + Mux(row_bit < A, row_bit, A - 1))]
        if not cfg.bitskip:  # a first step reads its operand's row 0: no add after first_row
            with m.If(starting):
                m.d.comb += next_addr["op"].eq(first_row)
        if not fat_steps:
            m.d.comb += next_addr["car"].eq(Mux(nxt["cur"], cfg.carry_rows[1], cfg.carry_rows[0]))

        first_state = "STEP" if fat_steps else "PINIT"
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
                            upd(bit, 0)
                            m.next = "CLEAR"
                        with m.Case(Op.WEIGHTS):
                            codes_in = cmd.data[:2 * W]
                            # fat: the SACU issues only +1 / -1; the baselines issue every weight.
                            live = Cat((((codes_in.word_select(k, 2) == Code.PLUS)
                                         | (codes_in.word_select(k, 2) == Code.MINUS)) if cfg.mode == "fat"
                                        else Const(1)) & (k < cmd.cnt) for k in range(W))
                            bad = Cat((codes_in.word_select(k, 2) == Code.INVALID) & (k < cmd.cnt)
                                      for k in range(W))
                            m.d.sync += codes.eq(codes_in)
                            upd(mask, live)
                            upd(slot0_row, cmd.addr * A)
                            upd(acc_base, cmd.aux)
                            # every invalid code in the word counts (as the cycle model and the
                            # docs say), not the word once
                            with m.If(bad.any()):
                                count("errors", sum(bad[k] for k in range(W)))
                            with m.If(live.any()):
                                m.next = "ISSUE"
                        with m.Case(Op.READ):
                            m.d.sync += [rd_cols.eq(cmd.aux), rd_params.eq(cmd.data[:70])]
                            upd(acc_base, cmd.addr)
                            upd(bit, 0)
                            m.next = "READ"

            with m.State("CLEAR"):
                m.d.comb += [w_addr.eq(acc_base + bit), w_data.eq(0), w_en.eq(1), busy.eq(1)]
                count("row_writes")
                upd(bit, bit + 1)
                with m.If(bit == B - 1):
                    m.next = "IDLE"

            with m.State("ISSUE"):
                # The SACU issues the next weight; zero weights never get here in fat mode.
                start_op()
                m.next = first_state

            if fat_steps:
                with m.State("STEP"):
                    if cfg.bitskip:
                        # Jump straight to the next bit whose step can change anything.
                        with m.If(~found_r):  # every plane left is zero, every carry matches
                            count("skipped_bits", B - bit)
                            self._op_done(m, mask, start_op, first_state)
                        with m.Else():
                            self._fat_step(m, acc_base + t_r, s_vec, c_out, (w_addr, w_data, w_en), busy,
                                           count, lambda: upd(carry, c_out))
                            step_next = Signal(range(B + 2))
                            m.d.comb += step_next.eq(t_r + 1)
                            upd(bit, step_next)
                            m.d.comb += stepping.eq(1)
                            # Done now when nothing above can change: at or past the sign
                            # plane every carry must equal that column's operand sign.
                            finished = (step_next == B) | ((step_next >= A) & (c_out == o_vec))
                            count("skipped_bits", (t_r - bit) + Mux(finished, B - step_next, 0))
                            with m.If(finished):
                                self._op_done(m, mask, start_op, first_state)
                    else:
                        self._fat_step(m, acc_base + bit, s_vec, c_out, (w_addr, w_data, w_en), busy, count,
                                       lambda: upd(carry, c_out))
                        upd(bit, bit + 1)
                        with m.If(bit == B - 1):
                            self._op_done(m, mask, start_op, first_state)
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
                        m.d.comb += [w_addr.eq(acc_base + bit), w_data.eq(s_vec), w_en.eq(1)]
                        m.d.sync += phase.eq(0)
                        upd(cur, ~cur)
                        upd(bit, bit + 1)
                        with m.If(bit == B - 1):
                            self._op_done(m, mask, start_op, first_state)

            with m.State("READ"):
                m.d.comb += busy.eq(1)
                m.d.sync += tbuf.word_select(bit, C).eq(a_vec)
                upd(bit, bit + 1)
                count("row_reads")
                count("steps")
                with m.If(bit == B - 1):
                    m.next = "HANDOFF"

            with m.State("HANDOFF"):  # give the sensed accumulator to the emitter
                with m.If(~em_busy):
                    m.d.sync += [obuf.eq(tbuf), em_params.eq(rd_params), em_cols.eq(rd_cols), em_col.eq(0),
                                 em_busy.eq(rd_cols != 0)]
                    m.next = "IDLE"

        with m.If(busy):
            count("busy")

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
    def _fat_step(m, row, s_vec, c_out, write, busy, count, latch):
        """One FAT step: sense accumulator and operand rows, write the sum, latch the carry."""
        w_addr, w_data, w_en = write
        m.d.comb += [w_addr.eq(row), w_data.eq(s_vec), w_en.eq(1), busy.eq(1)]
        latch()
        count("steps")
        count("row_reads", 2)
        count("row_writes")
        count("latch_ops")

    def _op_done(self, m, mask, start_op, first_state):
        """The operation ends this cycle; the SACU issues the next non-zero weight in
        the same cycle (its lookahead hides the issue), or the word is finished."""
        with m.If(mask.any()):
            start_op()
            m.next = first_state
        with m.Else():
            m.next = "IDLE"
