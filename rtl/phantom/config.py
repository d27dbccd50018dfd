"""Phantom engine configuration: the single source of truth for RTL, mapper, cycle model and report."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

W_BITS = 8  # int8 weights
A_BITS = 9  # activations as u = x - zero_point: 9-bit signed
ACC_BITS = 32  # int32 accumulation (TFLite)
PARAM_BITS = 32 + 32 + 6  # bias, mult, shift of the output a chunk closes


@dataclass(frozen=True)
class PhantomConfig:
    """Parameters of one Phantom core (Qureshi & Munir, arXiv 2111.05002; Sparse-PE).

    threads  T multipliers: up to T useful (non-zero x non-zero) products per cycle
    chunk    CH elements per chunk: one weight mask + packed non-zero weights and one
             activation mask + packed non-zero activations per input word
    window   L chunks of lookahead: the threads take useful pairs from up to L
             buffered chunks of the same output in one cycle
    dense    the baseline: the mapper sends every element (masks all ones, zeros
             packed and multiplied); the core is the same hardware
    """

    threads: int = 4
    chunk: int = 32
    window: int = 2
    dense: bool = False

    def __post_init__(self):
        for name in ("threads", "chunk", "window"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if not 1 <= self.threads <= 16:
            raise ValueError(f"threads must lie in [1, 16], not {self.threads}")
        if not 2 <= self.chunk <= 48:  # 48: the input word stays under 1024 bits
            raise ValueError(f"chunk must lie in [2, 48], not {self.chunk}")
        if not 1 <= self.window <= 4:
            raise ValueError(f"window must lie in [1, 4], not {self.window}")
        if self.in_bits > 1024:
            raise ValueError(f"chunk {self.chunk} makes a {self.in_bits}-bit input word (at most 1024)")

    @property
    def cnt_bits(self) -> int:
        return self.chunk.bit_length()  # counts 0..chunk

    @property
    def latency(self) -> str:
        return "data dependent: see the cycle model (rtl.phantom.mapper.cycle_model)"

    def chunk_layout(self) -> data.StructLayout:
        """One input word: a chunk pair plus the parameters of the output it may close."""
        ch = self.chunk
        return data.StructLayout({
            "wmask": unsigned(ch),  # bit i set iff weight i of the chunk is non-zero
            "wvals": unsigned(ch * W_BITS),  # packed non-zero weights, lowest index first
            "amask": unsigned(ch),  # bit i set iff activation u_i = x_i - zero_point is non-zero
            "avals": unsigned(ch * A_BITS),  # packed non-zero u values (9-bit two's complement)
            "wcnt": unsigned(self.cnt_bits),  # number of packed weights (must equal popcount(wmask))
            "acnt": unsigned(self.cnt_bits),  # number of packed activations
            "last": unsigned(1),  # this chunk closes its output
            "bias": signed(32),
            "mult": signed(32),
            "shift": signed(6),
        })

    @property
    def in_bits(self) -> int:
        return self.chunk * (2 + W_BITS + A_BITS) + 2 * self.cnt_bits + 1 + PARAM_BITS
