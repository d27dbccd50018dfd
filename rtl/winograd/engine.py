"""Pipelined integer Winograd F(m x m, 3 x 3) convolution engine."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.common.ecp5 import mult18x18d
from rtl.requant.requantizer import Requantizer
from rtl.winograd import transforms as tf
from rtl.winograd.config import ACT_BITS, BIAS_BITS, WinogradConfig


class WinogradEngine(wiring.Component):
    """int8 Winograd convolution of one input tile per cycle, for ``channels`` output channels.

    Per input beat (one a x a input tile ``x`` of one input channel, a = m + 2, with the
    offline-transformed weight tiles ``U = (sG) g (sG)^T`` of ``channels`` output
    channels)::

        d = x - input_zero_point      V = B^T d B                (shift-add)
        M[p] += U[p] * V              (channels * a * a multipliers, element-wise)

    and on the beat flagged ``last`` (the last input channel) for each channel p::

        Y = (A^T M A) / s**2          (shift-add, then exact division)
        acc = Y + bias[p]             -> shared Requantizer (mult[p], shift[p]) -> int8

    ``acc`` equals :func:`golden.conv.conv2d_int` on the tile exactly; every stage is
    sized by :attr:`WinogradConfig.widths` (worst case, at most ``max_in_channels``
    input channels), so nothing can overflow.

    Parameters
    ----------
    config : WinogradConfig

    Ports
    -----
    i : In(stream)   payload :meth:`WinogradConfig.in_layout`: ``x`` (a*a int8, row-major),
                     ``u`` (channels x a*a), ``bias``/``mult``/``shift`` per channel
                     (read on the ``last`` beat), ``first``/``last`` (first/last input
                     channel of an accumulation; both set when there is one channel).
    o : Out(stream)  payload :meth:`WinogradConfig.out_layout`: ``channels`` m x m int8
                     output tiles (row-major), one beat per ``last`` input beat.
    input_zero_point : In(signed(8))  zero point of ``x`` (padding is fed as this value).
    zero_point, act_min, act_max : In(signed(8))  requantizer output zero point and clamp.
    The four static inputs are held during a run.

    Latency ``config.latency`` cycles (``config.transform_stages``: 8, or 9 for
    F(4x4,3x3) whose exact division takes two stages; + the requantizer's
    ``config.requant.latency``: 5 compact, 8 fast, 9 fast with ECP5 DSPs) from
    the handshake of a ``last`` beat to its output beat. Throughput one input beat per
    cycle: ``channels * m * m * 9`` direct-convolution MACs per cycle with
    ``channels * a * a`` multipliers. The whole pipeline advances together and stalls
    while the output is back-pressured (``o.valid & ~o.ready``).
    """

    def __init__(self, config: WinogradConfig | None = None):
        config = WinogradConfig() if config is None else config
        if not isinstance(config, WinogradConfig):
            raise TypeError(f"config must be a WinogradConfig, not {config!r}")
        self._config = config
        super().__init__({
            "i": In(stream.Signature(config.in_layout())),
            "o": Out(stream.Signature(config.out_layout())),
            "input_zero_point": In(signed(ACT_BITS)),
            "zero_point": In(signed(ACT_BITS)),
            "act_min": In(signed(ACT_BITS)),
            "act_max": In(signed(ACT_BITS)),
        })
        self.probes: dict = {}  # stage name -> registered signals (filled by elaborate; for tests)

    @property
    def config(self) -> WinogradConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        a, mo, P = cfg.a, cfg.m, cfg.channels
        bits = cfg.bits

        lanes = [[Requantizer(cfg.requant) for _ in range(mo * mo)] for _ in range(P)]
        for p in range(P):
            for k, r in enumerate(lanes[p]):
                m.submodules[f"requant_{p}_{k}"] = r
                m.d.comb += [r.zero_point.eq(self.zero_point), r.act_min.eq(self.act_min),
                             r.act_max.eq(self.act_max)]

        # One enable for the whole pipeline: it advances when the requantizers take a value.
        en = Signal()
        m.d.comb += [en.eq(lanes[0][0].i.ready), self.i.ready.eq(en)]
        valid = Signal(cfg.transform_stages)  # valid bit of each stage (cfg.stages)
        sync = []

        def regs(name, exprs, shape):
            """Register a nested list of expressions into signals of ``shape`` (when en)."""
            if isinstance(exprs, list):
                return [regs(f"{name}_{k}", e, shape) for k, e in enumerate(exprs)]
            s = Signal(shape, name=name)
            sync.append(s.eq(exprs))
            return s

        def delay(name, meta):
            return {k: regs(f"{name}_{k}", v, v.shape() if not isinstance(v, list) else v[0].shape())
                    for k, v in meta.items()}

        pl = self.i.payload
        meta0 = {"first": pl.first, "last": pl.last,
                 "bias": [pl.bias[p] for p in range(P)], "mult": [pl.mult[p] for p in range(P)],
                 "shift": [pl.shift[p] for p in range(P)]}

        # Stage 1: d = x - zp, B^T d.
        d = [[pl.x[i * a + j] - self.input_zero_point for j in range(a)] for i in range(a)]
        btd = regs("btd", tf.left(cfg.bt, d), signed(bits("BTd")))
        u1 = regs("u1", [[pl.u[p][k] for k in range(a * a)] for p in range(P)], signed(bits("U")))
        meta1 = delay("s1", meta0)
        # Stage 2: V = (B^T d) B.
        v = regs("v", tf.right_t(btd, cfg.bt), signed(bits("V")))
        u2 = regs("u2", u1, signed(bits("U")))
        meta2 = delay("s2", meta1)
        # Stage 3: element-wise products U[p] * V: the only multipliers of the transform
        # (uv_dsp="ecp5": instantiated MULT18X18D, their input registers a stage before).
        if cfg.uv_dsp == "ecp5":
            uv = [[[mult18x18d(m, f"uv_{p}_{i}_{j}", u2[p][i * a + j], v[i][j], en)[:bits("UV")].as_signed()
                    for j in range(a)] for i in range(a)] for p in range(P)]
            meta2 = delay("s2in", meta2)
        else:
            uv = regs("uv", [[[u2[p][i * a + j] * v[i][j] for j in range(a)] for i in range(a)] for p in range(P)],
                      signed(bits("UV")))
        meta3 = delay("s3", meta2)
        # Stage 4: accumulate over input channels; a `last` beat hands the sum on.
        k_m = cfg.stages.index("M")
        acc = [[[Signal(signed(bits("M")), name=f"macc_{p}_{i}_{j}") for j in range(a)] for i in range(a)]
               for p in range(P)]
        mtile = [[[Signal(signed(bits("M")), name=f"m_{p}_{i}_{j}") for j in range(a)] for i in range(a)]
                 for p in range(P)]
        with m.If(en & valid[k_m - 1]):
            for p in range(P):
                for i in range(a):
                    for j in range(a):
                        total = Mux(meta3["first"], 0, acc[p][i][j]) + uv[p][i][j]
                        with m.If(meta3["last"]):
                            m.d.sync += mtile[p][i][j].eq(total)
                        with m.Else():
                            m.d.sync += acc[p][i][j].eq(total)
        meta4 = delay("s4", {k: meta3[k] for k in ("bias", "mult", "shift")})
        # Stage 5, 6: output transform A^T M A.
        atm = regs("atm", [tf.left(cfg.at, mtile[p]) for p in range(P)], signed(bits("ATM")))
        meta5 = delay("s5", meta4)
        atma = regs("atma", [tf.right_t(atm[p], cfg.at) for p in range(P)], signed(bits("ATMA")))
        meta6 = delay("s6", meta5)
        # Stage 7 (and 8 for F(4x4,3x3)): exact division by s**2.  Then + bias -> int32 accumulator.
        s2, yb = cfg.s * cfg.s, bits("Y")
        parts = tf.exact_div_parts(s2, yb)
        y, meta = atma, meta6
        for part in range(parts):
            name = "y" if part == parts - 1 else f"y{part}"
            y = regs(name, [[[tf.exact_div_part(y[p][i][j], s2, yb, part, parts) for j in range(mo)]
                             for i in range(mo)] for p in range(P)], signed(yb))
            meta = delay(f"s{7 + part}", meta)
        acc32 = regs("acc", [[[(y[p][i][j] + meta["bias"][p])[:BIAS_BITS] for j in range(mo)] for i in range(mo)]
                             for p in range(P)], signed(BIAS_BITS))
        meta_out = delay(f"s{7 + parts}", {k: meta[k] for k in ("mult", "shift")})

        # Valid bits: the accumulate stage emits only on `last` beats.
        shift_in = [self.i.valid, *(valid[k - 1] & meta3["last"] if k == k_m else valid[k - 1]
                                    for k in range(1, cfg.transform_stages))]
        with m.If(en):
            m.d.sync += sync
            m.d.sync += [valid[k].eq(b) for k, b in enumerate(shift_in)]

        # Requantizers, one per output of the tile group, in lockstep.
        for p in range(P):
            for k, r in enumerate(lanes[p]):
                m.d.comb += [r.i.valid.eq(valid[-1]), r.i.payload.acc.eq(acc32[p][k // mo][k % mo]),
                             r.i.payload.mult.eq(meta_out["mult"][p]), r.i.payload.shift.eq(meta_out["shift"][p]),
                             r.o.ready.eq(self.o.ready), self.o.payload[p][k].eq(r.o.payload)]
        m.d.comb += self.o.valid.eq(lanes[0][0].o.valid)

        self.probes = {"BTd": btd, "V": v, "U": u2, "UV": uv, "M": mtile, "ATM": atm, "ATMA": atma, "Y": y,
                       "acc": acc32, "valid": valid}
        return m
