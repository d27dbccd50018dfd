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
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Out

from rtl.common.ports import int8_engine_ports
from rtl.requant.requantizer import Requantizer
from rtl.phantom.config import A_BITS, ACC_BITS, W_BITS, PhantomConfig

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

    Latency: an output leaves its requantizer 1 + ``config.requant.latency`` cycles
    after its last products issue (1 + 5 with the compact requantizer, 1 + 8 with the
    fast one). Throughput: T products per cycle, shared by at most lanes + 1 outputs (the
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
        rem = [Signal(M, name=f"rem{s}") for s in range(L)]  # useful products not yet issued
        woff = [Signal(M * PB, name=f"woff{s}") for s in range(L)]  # prefix popcounts of the weight mask
        aoff = [Signal(M * PB, name=f"aoff{s}") for s in range(L)]  # ... and of the activation mask
        wval = [Signal(VP * W_BITS, name=f"wval{s}") for s in range(L)]  # packed non-zero weights
        aval = [Signal(VP * A_BITS, name=f"aval{s}") for s in range(L)]  # packed non-zero activations
        params = [Signal(70, name=f"params{s}") for s in range(L)]  # bias, mult, shift
        acc = Signal(signed(ACC_BITS))

        # ---- the incoming chunks: prefix popcounts of both masks; popcounts = packed counts ---
        word = self.i.payload

        def field(name, lane):
            return getattr(word, name if lane == 0 else f"{name}_{lane}")

        n_in = Signal(range(NL + 1))
        m.d.comb += n_in.eq(word.chunks if NL > 1 else 1)
        incoming = []
        for lane in range(NL):
            wmask, amask = field("wmask", lane), field("amask", lane)
            bad = Signal(name=f"bad{lane}")
            m.d.comb += bad.eq((_popcount(m, wmask, f"wpop{lane}") != field("wcnt", lane))
                               | (_popcount(m, amask, f"apop{lane}") != field("acnt", lane)))
            incoming.append({
                "woff": _prefix_popcounts(m, wmask, PB, f"pw{lane}"),  # offsets into the packed values
                "aoff": _prefix_popcounts(m, amask, PB, f"pa{lane}"),
                "rem": wmask & amask, "bad": bad, "last": field("last", lane),
                "wval": field("wvals", lane), "aval": field("avals", lane),
                "params": Cat(field("bias", lane), field("mult", lane), field("shift", lane)),
            })

        # ---- eligibility: regions 0 .. NL (region k follows k closing chunks) ---------------
        elig, regions = [], [[] for _ in range(NL)]
        for s in range(L):
            e = Signal(name=f"elig{s}")
            lasts_before = sum(last[j] for j in range(s)) if s else Const(0, 1)
            m.d.comb += e.eq(valid[s] & (lasts_before <= NL))
            elig.append(e)
            for k in range(NL):
                rk = Signal(name=f"region{k}_{s}")
                m.d.comb += rk.eq(valid[s] & (lasts_before == k))
                regions[k].append(rk)
        r = Signal(N, name="r0")
        m.d.comb += r.eq(Cat(Mux(elig[s], rem[s], 0) for s in range(L)))
        region_masks = []
        for k in range(NL):
            rm = Signal(N, name=f"region{k}")
            m.d.comb += rm.eq(Cat(regions[k][s].replicate(M) for s in range(L)))
            region_masks.append(rm)

        # ---- thread scheduler: the next T useful positions, oldest first ------------------
        woff_flat, aoff_flat = Cat(*woff), Cat(*aoff)
        wval_flat, aval_flat = Cat(*wval), Cat(*aval)
        totals = [Signal(signed(ACC_BITS), name=f"total{k}") for k in range(NL + 1)]
        prods = [[] for _ in range(NL + 1)]
        ens = []
        for k in range(T):
            low = Signal(N, name=f"low{k}")
            m.d.comb += low.eq(r & (~r + 1))  # lowest set bit, one-hot
            idx = Signal(range(N), name=f"idx{k}")
            m.d.comb += idx.eq(Cat(Cat(low[p] for p in range(N) if (p >> b) & 1).any()
                                   for b in range(max(1, (N - 1).bit_length()))))
            slot = Signal(range(L), name=f"slot{k}")
            m.d.comb += slot.eq(sum((idx >= s * M) for s in range(1, L)))
            wo, ao = woff_flat.word_select(idx, PB), aoff_flat.word_select(idx, PB)
            wi = Signal(VB + len(slot), name=f"wi{k}")
            ai = Signal(VB + len(slot), name=f"ai{k}")
            m.d.comb += [wi.eq(Cat(wo[:VB], slot)), ai.eq(Cat(ao[:VB], slot))]
            en = Signal(name=f"en{k}")
            m.d.comb += en.eq(r.any())
            prod = Signal(signed(W_BITS + A_BITS), name=f"prod{k}")
            m.d.comb += prod.eq(Mux(en, wval_flat.word_select(wi, W_BITS).as_signed()
                                    * aval_flat.word_select(ai, A_BITS).as_signed(), 0))
            inside = []
            for j in range(NL):
                in_j = Signal(name=f"in{j}_{k}")
                m.d.comb += in_j.eq((low & region_masks[j]).any())
                prods[j].append(Mux(in_j, prod, 0))
                inside.append(in_j)
            prods[NL].append(Mux(Cat(inside).any(), 0, prod))
            ens.append(en)
            nr = Signal(N, name=f"r{k + 1}")
            m.d.comb += nr.eq(r & ~low)
            r = nr
        for j in range(NL + 1):
            m.d.comb += totals[j].eq(sum(prods[j]))

        # slots emptied this cycle, a prefix from the oldest, closing at most NL outputs
        freed, closes = [], []
        for s in range(L):
            f = Signal(name=f"freed{s}")
            cl = Signal(range(NL + 1), name=f"closes{s}")  # outputs closed up to and including slot s
            before = closes[-1] if closes else Const(0, range(NL + 1))
            m.d.comb += f.eq(elig[s] & (r[s * M:(s + 1) * M] == 0) & (freed[-1] if freed else 1)
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

        stall = Signal()
        m.d.comb += stall.eq((n_cl != 0) & out_valid & ~rqs[0].i.ready)
        go = ~stall
        with m.If(out_valid & rqs[0].i.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(go):
            with m.Switch(n_cl):
                for c in range(NL + 1):
                    with m.Case(c):
                        if c == 0:
                            m.d.sync += acc.eq(acc + sum(totals))
                            continue
                        m.d.sync += [out_valid.eq(1), out_n.eq(c), acc.eq(sum(totals[c:]))]
                        for j in range(c):
                            base = acc + totals[0] if j == 0 else totals[j]
                            m.d.sync += [out_acc[j].eq(base + fin_params[j][:32].as_signed()),
                                         out_ms[j].eq(fin_params[j][32:])]

        # ---- window update: issue, shift out freed slots, take new chunks --------------------
        d_eff = Signal(range(L + 1))
        m.d.comb += d_eff.eq(Mux(go, d, 0))
        count = Signal(range(L + 1))
        m.d.comb += count.eq(sum(valid))
        n_after = Signal(range(L + 1))
        m.d.comb += n_after.eq(count - d_eff)
        m.d.comb += self.i.ready.eq(n_after <= L - NL)
        rem_u = [Mux(go & elig[s], r[s * M:(s + 1) * M], rem[s]) for s in range(L)]
        with m.Switch(d_eff):
            for dd in range(L + 1):
                with m.Case(dd):
                    for s in range(L):
                        if s + dd < L:
                            m.d.sync += [valid[s].eq(valid[s + dd]), last[s].eq(last[s + dd]),
                                         rem[s].eq(rem_u[s + dd]), woff[s].eq(woff[s + dd]),
                                         aoff[s].eq(aoff[s + dd]), wval[s].eq(wval[s + dd]),
                                         aval[s].eq(aval[s + dd]), params[s].eq(params[s + dd])]
                        else:
                            m.d.sync += valid[s].eq(0)
        accept = self.i.valid & self.i.ready
        with m.If(accept):
            with m.Switch(n_after):
                for s in range(L - NL + 1):
                    with m.Case(s):
                        for lane, c in enumerate(incoming):
                            present = (n_in > lane) if lane else Const(1, 1)
                            with m.If(present):
                                m.d.sync += [valid[s + lane].eq(1), last[s + lane].eq(c["last"]),
                                             rem[s + lane].eq(c["rem"]), woff[s + lane].eq(c["woff"]),
                                             aoff[s + lane].eq(c["aoff"]), wval[s + lane].eq(c["wval"]),
                                             aval[s + lane].eq(c["aval"]), params[s + lane].eq(c["params"])]
            m.d.sync += stats["chunks"].eq(stats["chunks"] + n_in)
            bad_in = [c["bad"] & ((n_in > lane) if lane else 1) for lane, c in enumerate(incoming)]
            m.d.sync += stats["errors"].eq(stats["errors"] + sum(bad_in))
            with m.If(stats["error_chunk"] == 0):
                for lane in reversed(range(NL)):
                    with m.If(bad_in[lane]):
                        m.d.sync += stats["error_chunk"].eq(stats["chunks"] + 1 + lane)

        # ---- counters ---------------------------------------------------------------------
        with m.If(valid[0]):
            m.d.sync += [stats["busy"].eq(stats["busy"] + 1), stats["slots"].eq(stats["slots"] + T)]
        with m.If(go):
            m.d.sync += stats["products"].eq(stats["products"] + sum(ens))
        return m
