"""Phantom engine configuration: the single source of truth for RTL, mapper, cycle model and report."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

W_BITS = 8  # int8 weights
A_BITS = 9  # activations as u = x - zero_point: 9-bit signed
ACC_BITS = 32  # int32 accumulation (TFLite)
PARAM_BITS = 32 + 32 + 6  # bias, mult, shift of the output a chunk closes
MAX_IN_BITS = 4096  # widest input word allowed (the harness memory gets shallower as words widen)


@dataclass(frozen=True)
class PhantomConfig:
    """Parameters of one Phantom core (Qureshi & Munir, arXiv 2111.05002; Sparse-PE).

    threads  T multipliers: up to T useful (non-zero x non-zero) products per cycle
    chunk    M mask positions per input word: the lookahead scans both binary masks
             over M positions of one output's dot product per word
    values   V packed non-zero values per operand per word (the value bandwidth): the
             mapper ends a chunk early when either operand would exceed V non-zeros
    window   L words of lookahead: the threads take the next useful pairs from up to L
             buffered words, spanning at most two outputs (the older one may close)
    dense    the baseline: the mapper sends every element (masks all ones, zeros
             packed and multiplied, V positions per word); the core is the same hardware
    """

    threads: int = 4
    chunk: int = 256
    values: int = 64
    window: int = 3
    dense: bool = False

    def __post_init__(self):
        for name in ("threads", "chunk", "values", "window"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if not 1 <= self.threads <= 16:
            raise ValueError(f"threads must lie in [1, 16], not {self.threads}")
        if not 2 <= self.chunk <= 256:
            raise ValueError(f"chunk must lie in [2, 256], not {self.chunk}")
        if not 1 <= self.values <= self.chunk:
            raise ValueError(f"values must lie in [1, chunk={self.chunk}], not {self.values}")
        if not 2 <= self.window <= 4:
            raise ValueError(f"window must lie in [2, 4], not {self.window}")
        if self.in_bits > MAX_IN_BITS:
            raise ValueError(f"chunk {self.chunk} with {self.values} values makes a {self.in_bits}-bit input "
                             f"word (at most {MAX_IN_BITS})")

    @property
    def cnt_bits(self) -> int:
        return self.values.bit_length()  # counts 0..values

    @property
    def latency(self) -> str:
        return "data dependent: see the cycle model (rtl.phantom.mapper.cycle_model)"

    def chunk_layout(self) -> data.StructLayout:
        """One input word: a chunk pair plus the parameters of the output it may close."""
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

    @property
    def in_bits(self) -> int:
        return 2 * self.chunk + self.values * (W_BITS + A_BITS) + 2 * self.cnt_bits + 1 + PARAM_BITS
