"""Phantom core: T threads take useful (non-zero x non-zero) products from a lookahead window.

After Qureshi & Munir, "Phantom: An Efficient Sparse Convolution Neural Network
Accelerator with Dynamic Thread Scheduling" (arXiv 2111.05002), whose core follows
their Sparse-PE (IEEE Access 9, 2021). Weights and activations arrive as chunks of
(binary mask, packed non-zero values); the AND of the two masks marks the useful
products. As a chunk enters the window, prefix popcounts of both masks give every
position its offsets into the packed values. Each cycle the thread scheduler takes
the next T set bits of the window's useful masks -- across chunk boundaries and
across the boundary between two outputs -- and each thread fetches its weight and
activation at its position's offsets, so no thread idles at the end of a chunk or of an
output while work is buffered. Values travel packed: a word carries ``values``
non-zeros of each operand over up to ``chunk`` mask positions.

For timing (issue 16) the threads are ranked in parallel from per-slot counts of the
useful products issued and left and the useful mask's prefix popcounts, the slots'
eligibility is registered a cycle ahead, and issue and multiply are registered
(``ISSUE_STAGES``), which the cycle models follow (``PhantomConfig.tail``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Out

from rtl.common.ports import int8_engine_ports
from rtl.requant.requantizer import Requantizer
from rtl.phantom.config import A_BITS, ACC_BITS, ISSUE_STAGES, W_BITS, PhantomConfig

STATS = ("busy", "products", "slots", "chunks", "errors", "error_chunk")


def _popcount(m: Module, bits: Value, name: str) -> Signal:
    """Number of set bits, by a balanced adder tree."""
    src = Signal(len(bits), name=f"{name}_in")  # a signal, so bit selects do not copy the expression
    m.d.comb += src.eq(bits)
    terms = [src[p] for p in range(len(bits))]
    while len(terms) > 1:
        terms = [terms[j] + terms[j + 1] if j + 1 < len(terms) else terms[j] for j in range(0, len(terms), 2)]
    out = Signal(range(len(bits) + 1), name=name)
    m.d.comb += out.eq(terms[0])
    return out


def _prefix_popcounts(m: Module, bits: Value, width: int, name: str) -> Signal:
    """Packed [popcount(bits[:p]) for p in range(len(bits))], ``width``-bit fields.

    Log-depth (Kogge-Stone) prefix sum: each level adds the packed vector to itself
    shifted by d fields. A field never exceeds n < 2**width, so a wide add is n
    field-wise adds (no carry crosses a field); the adds are cut into segments of
    whole fields, which keeps the netlist small, and each level is one signal, which
    keeps event-driven simulators fast."""
    n = len(bits)
    level = Signal(n * width, name=f"{name}_l0")  # exclusive: field p counts bits[:p]
    m.d.comb += level.eq(Cat(Const(0, width), Cat(Cat(bits[p], Const(0, width - 1)) for p in range(n - 1))))
    seg = max(1, 64 // width) * width
    d = 1
    while d < n:
        nxt = Signal(n * width, name=f"{name}_l{d}")
        shifted = Cat(Const(0, d * width), level)[:n * width]  # wiring, not a shifter
        m.d.comb += nxt.eq(Cat((level[j:j + seg] + shifted[j:j + seg])[:min(seg, n * width - j)]
                               for j in range(0, n * width, seg)))
        level, d = nxt, d * 2
    return level


def _encode(onehot: Value) -> Value:
    """The index of the set bit of a one-hot (or zero) vector, by OR trees per index bit."""
    n = len(onehot)
    return Cat(Cat(onehot[p] for p in range(n) if (p >> b) & 1).any() for b in range(max(1, (n - 1).bit_length())))


def _select(onehot: Value, packed: Value, width: int) -> Value:
    """The ``width``-bit field of ``packed`` that the one-hot (or zero) vector picks, by AND-OR
    (each field ANDed with its bit replicated: the gates, and no multiplexer arm per
    position for line coverage to count as a branch)."""
    fields = [packed.word_select(p, width) & onehot[p].replicate(width) for p in range(len(onehot))]
    while len(fields) > 1:  # a balanced tree: shallow expressions
        fields = [fields[j] | fields[j + 1] if j + 1 < len(fields) else fields[j] for j in range(0, len(fields), 2)]
    return fields[0]


def _or_all(vectors: list, width: int) -> Value:
    """The bitwise OR of ``width``-bit vectors."""
    out = Const(0, width)
    for v in vectors:
        out = out | v
    return out


class PhantomCore(wiring.Component):
    """One Phantom core with ``lanes`` requantizer lanes.

    Ports
    -----
    i : In(stream)   ``PhantomConfig.word_layout``: ``lanes`` chunk pairs
                     (``chunk_layout``; the first ``chunks`` lanes hold one); a chunk with
                     ``last`` closes its output, whose ``bias``, ``mult`` and ``shift`` it
                     carries. ``ready`` while the window has room for ``lanes`` chunks
                     after this cycle's issue. All chunks of an output are consecutive;
                     the output is one int32 dot product.
    o : Out(stream)  per lane an int8 ``value`` and ``valid``: the outputs closed in one
                     cycle, in chunk-stream order (lane 0 first). Back-pressure stalls the core.
    zero_point, act_min, act_max : In  requantizer statics
    stat_busy      cycles with a chunk in the window
    stat_products  products issued (useful ones; every element in dense mode)
    stat_slots     thread slots offered (threads x busy cycles)
    stat_chunks    chunks accepted
    stat_errors    chunks whose mask popcount disagrees with their packed count
    stat_error_chunk  index + 1 of the first such chunk (0: none); the bad chunk is
                   computed with its masks as given (the flag is sticky)

    Latency: an output leaves its requantizer ``ISSUE_STAGES`` + 1 +
    ``config.requant.latency`` cycles after its last products issue (2 + 1 + 5 with the
    compact requantizer, 2 + 1 + 8 with the fast one): the scheduler registers the
    threads' operands, then their products, then the output register takes the sum.
    Throughput: T products per cycle, shared by at most lanes + 1 outputs (the
    older ones close, the youngest starts); at most ``lanes`` chunks in and ``lanes``
    outputs closed per cycle.
    """

    def __init__(self, config: PhantomConfig | None = None):
        self._config = cfg = config or PhantomConfig()
        ports = int8_engine_ports(cfg.word_layout(), STATS)
        ports["o"] = Out(stream.Signature(cfg.out_layout()))
        super().__init__(ports)

    @property
    def config(self) -> PhantomConfig:
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        T, M, L, NL = cfg.threads, cfg.chunk, cfg.window, cfg.lanes
        N = L * M  # window positions

        rqs = []
        for lane in range(NL):
            rq = Requantizer(cfg.requant)
            m.submodules[f"rq{lane}"] = rq
            m.d.comb += [rq.zero_point.eq(self.zero_point), rq.act_min.eq(self.act_min),
                         rq.act_max.eq(self.act_max), rq.o.ready.eq(self.o.ready)]
            rqs.append(rq)

        stats = {name: Signal(32, name=f"n_{name}") for name in STATS}
        for name, sig in stats.items():
            m.d.comb += getattr(self, f"stat_{name}").eq(sig)

        # ---- window: L chunk slots, slot 0 the oldest ------------------------------------
        VB = cfg.cnt_bits  # offsets into the packed values: 0 .. values
        VP = 1 << VB  # packed entries per slot, padded so that a value's index is Cat(offset, slot)
        PB = M.bit_length()  # prefix popcount fields: 0 .. M
        valid = [Signal(name=f"valid{s}") for s in range(L)]
        last = [Signal(name=f"last{s}") for s in range(L)]
        # valid, with at most NL closing chunks before it: registered a cycle ahead
        elig = [Signal(name=f"elig{s}") for s in range(L)]
        useful = [Signal(M, name=f"useful{s}") for s in range(L)]  # wmask & amask
        uoff = [Signal(M * PB, name=f"uoff{s}") for s in range(L)]  # its prefix popcounts
        issued = [Signal(range(M + 1), name=f"issued{s}") for s in range(L)]  # useful products issued
        ucnt = [Signal(range(M + 1), name=f"ucnt{s}") for s in range(L)]  # ... and left
        woff = [Signal(M * PB, name=f"woff{s}") for s in range(L)]  # prefix popcounts of the weight mask
        aoff = [Signal(M * PB, name=f"aoff{s}") for s in range(L)]  # ... and of the activation mask
        wval = [Signal(VP * W_BITS, name=f"wval{s}") for s in range(L)]  # packed non-zero weights
        aval = [Signal(VP * A_BITS, name=f"aval{s}") for s in range(L)]  # packed non-zero activations
        params = [Signal(70, name=f"params{s}") for s in range(L)]  # bias, mult, shift
        acc = Signal(signed(ACC_BITS))

        # ---- the incoming chunks: prefix popcounts of the masks; popcounts = packed counts ---
        word = self.i.payload

        def field(name, lane):
            return getattr(word, name if lane == 0 else f"{name}_{lane}")

        n_in = Signal(range(NL + 1))
        m.d.comb += n_in.eq(word.chunks if NL > 1 else 1)
        incoming = []
        for lane in range(NL):
            wmask, amask = field("wmask", lane), field("amask", lane)
            both = Signal(M, name=f"both{lane}")
            m.d.comb += both.eq(wmask & amask)
            bad = Signal(name=f"bad{lane}")
            m.d.comb += bad.eq((_popcount(m, wmask, f"wpop{lane}") != field("wcnt", lane))
                               | (_popcount(m, amask, f"apop{lane}") != field("acnt", lane)))
            incoming.append({
                "woff": _prefix_popcounts(m, wmask, PB, f"pw{lane}"),  # offsets into the packed values
                "aoff": _prefix_popcounts(m, amask, PB, f"pa{lane}"),
                "useful": both, "uoff": _prefix_popcounts(m, both, PB, f"pu{lane}"),  # ranks of the useful
                "ucnt": _popcount(m, both, f"upop{lane}"), "bad": bad, "last": field("last", lane),
                "wval": field("wvals", lane), "aval": field("avals", lane),
                "params": Cat(field("bias", lane), field("mult", lane), field("shift", lane)),
            })

        # ---- regions 0 .. NL - 1 (region j follows j closing chunks; the rest is region NL) --
        regions = [[] for _ in range(NL)]
        for s in range(L):
            lasts_before = sum(last[j] for j in range(s)) if s else Const(0, 1)
            for j in range(NL):
                rj = Signal(name=f"region{j}_{s}")
                m.d.comb += rj.eq(valid[s] & (lasts_before == j))
                regions[j].append(rj)

        # ---- thread scheduler: the next T useful positions, oldest first ------------------
        # Ranked in parallel from the per-slot counts (no chain through the threads): cum[s]
        # useful products are left in the eligible slots before slot s, so thread k (cum[s]
        # <= k < cum[s + 1]) takes slot s's useful position of rank issued[s] + k - cum[s],
        # the one whose prefix popcount (uoff) equals that rank.
        cum = []
        for s in range(L + 1):
            c = Signal(range(L * M + 1), name=f"cum{s}")
            m.d.comb += c.eq(sum(Mux(elig[j], ucnt[j], 0) for j in range(s)) if s else 0)
            cum.append(c)
        base = []  # products the slots before s issue: min(T, cum[s])
        for s in range(L + 1):
            b = Signal(range(T + 1), name=f"base{s}")
            m.d.comb += b.eq(Mux(cum[s] < T, cum[s], T))
            base.append(b)
        take = [Signal(range(T + 1), name=f"take{s}") for s in range(L)]
        m.d.comb += [take[s].eq(base[s + 1] - base[s]) for s in range(L)]
        n_taken = Signal(range(T + 1))
        m.d.comb += n_taken.eq(base[L])

        woff_flat, aoff_flat = Cat(*woff), Cat(*aoff)
        wval_flat, aval_flat = Cat(*wval), Cat(*aval)
        taken, w_op, a_op, in_op = [], [], [], []
        for k in range(T):
            ones, ins = [], []
            for s in range(L):
                in_s = Signal(name=f"in_slot{s}_{k}")
                m.d.comb += in_s.eq((cum[s] <= k) & (cum[s + 1] > k))
                rank = Signal(PB, name=f"rank{s}_{k}")
                m.d.comb += rank.eq(issued[s] + k - cum[s])
                one = Signal(M, name=f"one{s}_{k}")
                m.d.comb += one.eq(Cat(in_s & useful[s][q] & (uoff[s].word_select(q, PB) == rank)
                                       for q in range(M)))
                ones.append(one)
                ins.append(in_s)
            low = Signal(N, name=f"low{k}")  # one-hot: the window position thread k takes
            m.d.comb += low.eq(Cat(*ones))
            taken.append(low)
            idx = Signal(range(N), name=f"idx{k}")
            m.d.comb += idx.eq(_encode(low))
            slot = Signal(range(L), name=f"slot{k}")
            m.d.comb += slot.eq(_encode(Cat(*ins)))
            wo, ao = Signal(PB, name=f"wo{k}"), Signal(PB, name=f"ao{k}")
            m.d.comb += [wo.eq(_select(low, woff_flat, PB)), ao.eq(_select(low, aoff_flat, PB))]
            wi = Signal(VB + len(slot), name=f"wi{k}")
            ai = Signal(VB + len(slot), name=f"ai{k}")
            m.d.comb += [wi.eq(Cat(wo[:VB], slot)), ai.eq(Cat(ao[:VB], slot))]
            en = Signal(name=f"en{k}")
            m.d.comb += en.eq(n_taken > k)
            w_op.append(Mux(en, wval_flat.word_select(wi, W_BITS), 0))
            a_op.append(Mux(en, aval_flat.word_select(ai, A_BITS), 0))
            inside = []
            for j in range(NL):
                in_j = Signal(name=f"in{j}_{k}")
                m.d.comb += in_j.eq(Cat(ins[s] & regions[j][s] for s in range(L)).any())
                inside.append(in_j)
            in_op.append(Cat(inside))

        # the useful positions left, before and after this cycle's issue (for the formal
        # properties; the scheduler works from the counts)
        rem = []
        for s in range(L):
            rs = Signal(M, name=f"rem{s}")
            m.d.comb += rs.eq(Cat(useful[s][q] & (uoff[s].word_select(q, PB) >= issued[s]) for q in range(M)))
            rem.append(rs)
        r0 = Signal(N, name="r0")
        m.d.comb += r0.eq(Cat(Mux(elig[s], rem[s], 0) for s in range(L)))
        r_t = Signal(N, name=f"r{T}")
        m.d.comb += r_t.eq(r0 & ~_or_all(taken, N))

        # slots emptied this cycle, a prefix from the oldest, closing at most NL outputs
        freed, closes = [], []
        for s in range(L):
            f = Signal(name=f"freed{s}")
            cl = Signal(range(NL + 1), name=f"closes{s}")  # outputs closed up to and including slot s
            before = closes[-1] if closes else Const(0, range(NL + 1))
            m.d.comb += f.eq(elig[s] & (cum[s + 1] <= T) & (freed[-1] if freed else 1)
                             & ~(last[s] & (before == NL)))
            m.d.comb += cl.eq(before + (f & last[s]))
            freed.append(f)
            closes.append(cl)
        d = Signal(range(L + 1))
        m.d.comb += d.eq(sum(freed))
        n_cl = Signal(range(NL + 1))
        m.d.comb += n_cl.eq(closes[-1])
        fin_params = [Signal(70, name=f"fin_params{j}") for j in range(NL)]
        for s in reversed(range(L)):
            before = closes[s - 1] if s else 0
            for j in range(NL):
                with m.If(freed[s] & last[s] & (before == j)):
                    m.d.comb += fin_params[j].eq(params[s])

        # ---- issue pipeline (ISSUE_STAGES): fetched operands, then products -----------------
        # Each stage carries its threads' regions, the outputs the issue closes and their
        # parameters; the whole core advances together (``go``), so a stalled close holds
        # every stage and the scheduler.
        assert ISSUE_STAGES == 2, "the stages below are the operands and the products"
        stall = Signal()
        go = ~stall
        w1 = [Signal(signed(W_BITS), name=f"w1_{k}") for k in range(T)]
        a1 = [Signal(signed(A_BITS), name=f"a1_{k}") for k in range(T)]
        in1 = [Signal(NL, name=f"in1_{k}") for k in range(T)]
        n_cl1 = Signal(range(NL + 1))
        fin1 = [Signal(70, name=f"fin1_{j}") for j in range(NL)]
        prod2 = [Signal(signed(W_BITS + A_BITS), name=f"prod2_{k}") for k in range(T)]
        in2 = [Signal(NL, name=f"in2_{k}") for k in range(T)]
        n_cl2 = Signal(range(NL + 1))
        fin2 = [Signal(70, name=f"fin2_{j}") for j in range(NL)]
        n_iss = Signal(range(T + 1))  # products issued last cycle: stat_products counts them a cycle later
        m.d.sync += n_iss.eq(Mux(go, n_taken, 0))
        with m.If(go):
            m.d.sync += [n_cl1.eq(n_cl), n_cl2.eq(n_cl1)]
            m.d.sync += [x.eq(y) for x, y in zip(fin1, fin_params)] + [x.eq(y) for x, y in zip(fin2, fin1)]
            for k in range(T):
                m.d.sync += [w1[k].eq(w_op[k]), a1[k].eq(a_op[k]), in1[k].eq(in_op[k]),
                             prod2[k].eq(w1[k] * a1[k]), in2[k].eq(in1[k])]
        totals = [Signal(signed(ACC_BITS), name=f"total{j}") for j in range(NL + 1)]
        for j in range(NL):
            m.d.comb += totals[j].eq(sum(Mux(in2[k][j], prod2[k], 0) for k in range(T)))
        m.d.comb += totals[NL].eq(sum(Mux(in2[k].any(), 0, prod2[k]) for k in range(T)))

        # ---- output registers -> requantizers (lanes in lockstep) ---------------------------
        out_valid = Signal()
        out_n = Signal(range(NL + 1))
        out_acc = [Signal(signed(ACC_BITS), name=f"out_acc{j}") for j in range(NL)]
        out_ms = [Signal(38, name=f"out_ms{j}") for j in range(NL)]
        for j, rq in enumerate(rqs):
            m.d.comb += [rq.i.valid.eq(out_valid), rq.i.payload.acc.eq(out_acc[j]),
                         rq.i.payload.mult.eq(out_ms[j][:32]), rq.i.payload.shift.eq(out_ms[j][32:])]
        # which lanes hold an output, through a shift register that moves with the pipelines
        advance = Signal()
        m.d.comb += advance.eq(~rqs[0].o.valid | self.o.ready)
        lane_pipe = [Signal(NL, name=f"lanes_s{k}") for k in range(cfg.requant.latency)]
        with m.If(advance):
            m.d.sync += lane_pipe[0].eq(Cat((out_n > j) for j in range(NL)))
            m.d.sync += [lane_pipe[k].eq(lane_pipe[k - 1]) for k in range(1, len(lane_pipe))]
        m.d.comb += self.o.valid.eq(rqs[0].o.valid)
        for j, rq in enumerate(rqs):
            m.d.comb += [getattr(self.o.payload, f"lane{j}_value").eq(rq.o.payload),
                         getattr(self.o.payload, f"lane{j}_valid").eq(rq.o.valid & lane_pipe[-1][j])]

        m.d.comb += stall.eq((n_cl2 != 0) & out_valid & ~rqs[0].i.ready)
        with m.If(out_valid & rqs[0].i.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(go):
            with m.Switch(n_cl2):
                for c in range(NL + 1):
                    with m.Case(c):
                        if c == 0:
                            m.d.sync += acc.eq(acc + sum(totals))
                            continue
                        m.d.sync += [out_valid.eq(1), out_n.eq(c), acc.eq(sum(totals[c:]))]
                        for j in range(c):
                            base_j = acc + totals[0] if j == 0 else totals[j]
                            m.d.sync += [out_acc[j].eq(base_j + fin2[j][:32].as_signed()),
                                         out_ms[j].eq(fin2[j][32:])]

        # ---- window update: issue, shift out freed slots, take new chunks --------------------
        d_eff = Signal(range(L + 1))
        m.d.comb += d_eff.eq(Mux(go, d, 0))
        count = Signal(range(L + 1))
        m.d.comb += count.eq(sum(valid))
        n_after = Signal(range(L + 1))
        m.d.comb += n_after.eq(count - d_eff)
        m.d.comb += self.i.ready.eq(n_after <= L - NL)
        issued_u = [Mux(go, issued[s] + take[s], issued[s]) for s in range(L)]
        ucnt_u = [Mux(go, ucnt[s] - take[s], ucnt[s]) for s in range(L)]
        # the next valid and last bits, to register the next eligibility with them
        valid_n = [Signal(name=f"valid_n{s}") for s in range(L)]
        last_n = [Signal(name=f"last_n{s}") for s in range(L)]
        m.d.comb += [x.eq(y) for x, y in zip(last_n, last)]
        with m.Switch(d_eff):
            for dd in range(L + 1):
                with m.Case(dd):
                    for s in range(L):
                        if s + dd < L:
                            m.d.comb += [valid_n[s].eq(valid[s + dd]), last_n[s].eq(last[s + dd])]
                            m.d.sync += [useful[s].eq(useful[s + dd]), uoff[s].eq(uoff[s + dd]),
                                         issued[s].eq(issued_u[s + dd]), ucnt[s].eq(ucnt_u[s + dd]),
                                         woff[s].eq(woff[s + dd]), aoff[s].eq(aoff[s + dd]),
                                         wval[s].eq(wval[s + dd]), aval[s].eq(aval[s + dd]),
                                         params[s].eq(params[s + dd])]
                        else:
                            m.d.comb += valid_n[s].eq(0)
        accept = self.i.valid & self.i.ready
        with m.If(accept):
            with m.Switch(n_after):
                for s in range(L - NL + 1):
                    with m.Case(s):
                        for lane, c in enumerate(incoming):
                            present = (n_in > lane) if lane else Const(1, 1)
                            with m.If(present):
                                m.d.comb += [valid_n[s + lane].eq(1), last_n[s + lane].eq(c["last"])]
                                m.d.sync += [useful[s + lane].eq(c["useful"]), uoff[s + lane].eq(c["uoff"]),
                                             issued[s + lane].eq(0), ucnt[s + lane].eq(c["ucnt"]),
                                             woff[s + lane].eq(c["woff"]), aoff[s + lane].eq(c["aoff"]),
                                             wval[s + lane].eq(c["wval"]), aval[s + lane].eq(c["aval"]),
                                             params[s + lane].eq(c["params"])]
            m.d.sync += stats["chunks"].eq(stats["chunks"] + n_in)
            bad_in = [c["bad"] & ((n_in > lane) if lane else 1) for lane, c in enumerate(incoming)]
            m.d.sync += stats["errors"].eq(stats["errors"] + sum(bad_in))
            with m.If(stats["error_chunk"] == 0):
                for lane in reversed(range(NL)):
                    with m.If(bad_in[lane]):
                        m.d.sync += stats["error_chunk"].eq(stats["chunks"] + 1 + lane)
        for s in range(L):
            m.d.sync += [valid[s].eq(valid_n[s]), last[s].eq(last_n[s]),
                         elig[s].eq(valid_n[s] & ((sum(last_n[j] for j in range(s)) if s else 0) <= NL))]

        # ---- counters ---------------------------------------------------------------------
        with m.If(valid[0]):
            m.d.sync += [stats["busy"].eq(stats["busy"] + 1), stats["slots"].eq(stats["slots"] + T)]
        m.d.sync += stats["products"].eq(stats["products"] + n_iss)
        return m
