"""Phantom engine configuration: the single source of truth for RTL, mapper, cycle model and report."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from rtl.common.params import check_ints
from rtl.requant.config import RequantConfig, check_requant

W_BITS = 8  # int8 weights
A_BITS = 9  # activations as u = x - zero_point: 9-bit signed
ACC_BITS = 32  # int32 accumulation (TFLite)
MAX_IN_BITS = 4096  # widest input word allowed (the harness memory gets shallower as words widen)
ISSUE_STAGES = 2  # registers between the scheduler and the accumulator: operands fetched, product


@dataclass(frozen=True)
class PhantomConfig:
    """Parameters of one Phantom core (Qureshi & Munir, arXiv 2111.05002; Sparse-PE).

    threads  T multipliers: up to T useful (non-zero x non-zero) products per cycle
    chunk    M mask positions per input word: the lookahead scans both binary masks
             over M positions of one output's dot product per word
    values   V packed non-zero values per operand per word (the value bandwidth): the
             mapper ends a chunk early when either operand would exceed V non-zeros
    window   L chunks of lookahead: the threads take the next useful pairs from up to L
             buffered chunks, spanning at most lanes + 1 outputs
    lanes    chunks per input word, outputs closed per cycle and requantizer lanes of the
             output word (1 to 4): short dot products (K = 9) close several outputs a cycle
    dense    the baseline: the mapper sends every element (masks all ones, zeros
             packed and multiplied, V positions per chunk); the core is the same hardware
    requant_pipeline  the requantizers' pipeline (:data:`rtl.requant.config.PIPELINES`):
             "compact" (5 stages) or "fast" (8); the cycle models follow its latency
    requant_dsp  how the fast pipeline's partial products reach the DSPs
             (:data:`rtl.requant.config.DSPS`): "inferred" or "ecp5" (instantiated
             MULT18X18D with their registers; needs requant_pipeline="fast")
    """

    threads: int = 4
    chunk: int = 128
    values: int = 32
    window: int = 6
    lanes: int = 4
    dense: bool = False
    requant_pipeline: str = "compact"
    requant_dsp: str = "inferred"

    def __post_init__(self):
        check_requant(self.requant_pipeline, self.requant_dsp)
        check_ints(self, {name: (1, None) for name in ("threads", "chunk", "values", "window", "lanes")})
        if not 1 <= self.threads <= 16:
            raise ValueError(f"threads must lie in [1, 16], not {self.threads}")
        if not 2 <= self.chunk <= 256:
            raise ValueError(f"chunk must lie in [2, 256], not {self.chunk}")
        if not 1 <= self.values <= self.chunk:
            raise ValueError(f"values must lie in [1, chunk={self.chunk}], not {self.values}")
        if not 1 <= self.lanes <= 4:
            raise ValueError(f"lanes must lie in [1, 4], not {self.lanes}")
        if not self.lanes + 1 <= self.window <= 6:
            raise ValueError(f"window must lie in [lanes + 1 = {self.lanes + 1}, 6], not {self.window}")
        if self.in_bits > MAX_IN_BITS:
            raise ValueError(f"chunk {self.chunk} with {self.values} values makes a {self.in_bits}-bit input "
                             f"word (at most {MAX_IN_BITS})")

    @property
    def requant(self) -> RequantConfig:
        """The configuration of the core's requantizers."""
        return RequantConfig(pipeline=self.requant_pipeline, dsp=self.requant_dsp)

    @property
    def tail(self) -> int:
        """Cycle-model cycles after an output's last issue: the issue pipeline
        (:data:`ISSUE_STAGES`: fetched operands, product), its output register, the window
        slot it frees, and the requantizer's latency."""
        return ISSUE_STAGES + 1 + 1 + self.requant.latency

    @property
    def cnt_bits(self) -> int:
        return self.values.bit_length()  # counts 0..values

    @property
    def latency(self) -> str:
        return "data dependent: see the cycle model (rtl.phantom.model.cycles)"

    def chunk_layout(self) -> data.StructLayout:
        """One chunk: a chunk pair plus the parameters of the output it may close."""
        m, v = self.chunk, self.values
        return data.StructLayout({
            "wmask": unsigned(m),  # bit i set iff weight i of the chunk is non-zero
            "wvals": unsigned(v * W_BITS),  # packed non-zero weights, lowest index first
            "amask": unsigned(m),  # bit i set iff activation u_i = x_i - zero_point is non-zero
            "avals": unsigned(v * A_BITS),  # packed non-zero u values (9-bit two's complement)
            "wcnt": unsigned(self.cnt_bits),  # number of packed weights (must equal popcount(wmask))
            "acnt": unsigned(self.cnt_bits),  # number of packed activations
            "last": unsigned(1),  # this chunk closes its output
            "bias": signed(32),
            "mult": signed(32),
            "shift": signed(6),
        })

    def word_layout(self) -> data.StructLayout:
        """One input word: ``lanes`` chunks (lane l > 0: fields suffixed ``_l``) and, with
        several lanes, ``chunks``: how many lanes hold a chunk (the first ones)."""
        chunk = self.chunk_layout()
        if self.lanes == 1:
            return chunk
        out = {f"{name}{f'_{lane}' if lane else ''}": f.shape for lane in range(self.lanes) for name, f in chunk}
        out["chunks"] = unsigned(self.lanes.bit_length())
        return data.StructLayout(out)

    def out_layout(self) -> data.StructLayout:
        """One output word: per lane an int8 ``value`` and a ``valid`` bit (the lane's top bit)."""
        fields = {}
        for lane in range(self.lanes):
            fields.update({f"lane{lane}_value": signed(8), f"lane{lane}_valid": unsigned(1)})
        return data.StructLayout(fields)

    @property
    def in_bits(self) -> int:
        return self.word_layout().size
