"""Phantom-2D's configuration: the mesh's parameters, word layouts and the core it is made of."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from rtl.common.params import check_ints
from rtl.phantom.config import A_BITS, PhantomConfig
from rtl.requant.config import check_requant

V_BITS = A_BITS  # a packed value in a mesh word: either operand (int8 weights sign-extended to 9 bits)


@dataclass(frozen=True)
class Phantom2DConfig:
    """Phantom-2D: a ``rows`` x ``cols`` mesh of Phantom cores (one source of truth for the
    mesh RTL, its mapper, the mesh cycle model and the report).

    Every input word carries one word per row. A row word holds the operand its cores
    share -- broadcast to the row -- and one part per column with the other operand,
    the output's parameters and a ``use`` bit: conv and FC rows share an activation
    chunk (columns hold filters), depthwise rows share a channel's weights (columns hold
    positions). Chunk boundaries are common to a row word (``values`` bounds every
    operand in it). Each core has a ``fifo``-deep input queue and its own lane of the
    output word, tagged with the core.

    rows, cols   the mesh
    threads, chunk, values, window, dense   every core (see :class:`PhantomConfig`; one lane)
    fifo         chunk words queued per core (decouples the cores of a row)
    requant_pipeline  every core's requantizer pipeline (:data:`rtl.requant.config.PIPELINES`):
                 "compact" (5 stages) or "fast" (8); the mesh model follows its latency
    requant_dsp  every core's requantizer DSP choice (:data:`rtl.requant.config.DSPS`):
                 "inferred" or "ecp5" (needs requant_pipeline="fast")
    """

    rows: int = 2
    cols: int = 2
    threads: int = 4
    chunk: int = 32
    values: int = 8
    window: int = 3
    fifo: int = 4
    dense: bool = False
    requant_pipeline: str = "compact"
    requant_dsp: str = "inferred"

    def __post_init__(self):
        check_requant(self.requant_pipeline, self.requant_dsp)
        check_ints(self, {"rows": (1, 8), "cols": (1, 8), "fifo": (2, 16)})
        self.core  # validates the core parameters

    @property
    def core(self) -> PhantomConfig:
        return PhantomConfig(threads=self.threads, chunk=self.chunk, values=self.values, window=self.window,
                             lanes=1, dense=self.dense, requant_pipeline=self.requant_pipeline,
                             requant_dsp=self.requant_dsp)

    @property
    def cores(self) -> int:
        return self.rows * self.cols

    @property
    def tag_bits(self) -> int:
        return max(1, (self.cores - 1).bit_length())

    @property
    def latency(self) -> str:
        return "data dependent: see the mesh cycle model (rtl.phantom2d.model.cycles)"

    def word_layout(self) -> data.StructLayout:
        """One input word: per row r, ``r{r}_*`` the shared operand and ``r{r}c{c}_*`` column c's part."""
        m, v, cb = self.chunk, self.values, self.core.cnt_bits
        fields = {}
        for r in range(self.rows):
            fields.update({f"r{r}_valid": unsigned(1),  # the row word carries chunks
                           f"r{r}_swap": unsigned(1),  # the shared operand is the weights (depthwise)
                           f"r{r}_smask": unsigned(m), f"r{r}_svals": unsigned(v * V_BITS),
                           f"r{r}_scnt": unsigned(cb)})
            for c in range(self.cols):
                p = f"r{r}c{c}_"
                fields.update({p + "use": unsigned(1), p + "mask": unsigned(m), p + "vals": unsigned(v * V_BITS),
                               p + "cnt": unsigned(cb), p + "last": unsigned(1), p + "bias": signed(32),
                               p + "mult": signed(32), p + "shift": signed(6)})
        return data.StructLayout(fields)

    @property
    def lane_bits(self) -> int:
        return 8 + self.tag_bits + 1

    def out_layout(self) -> data.StructLayout:
        """One output word: a lane per core, each an int8 ``value``, its ``core`` and a
        ``valid`` bit (the top bit of the lane)."""
        fields = {}
        for j in range(self.cores):
            fields.update({f"lane{j}_value": signed(8), f"lane{j}_core": unsigned(self.tag_bits),
                           f"lane{j}_valid": unsigned(1)})
        return data.StructLayout(fields)

    @property
    def in_bits(self) -> int:
        return self.word_layout().size
