"""FAT engine configuration: the single source of truth for RTL, mapper, cycle model and report."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from rtl.requant.config import RequantConfig, check_requant

MODES = ("fat", "parapim", "dense")


class Op(enum.Enum, shape=unsigned(3)):
    """Command opcodes of the engine's input stream (``cmd_layout().op``; see rtl/fat/engine.py)."""
    LOAD = 0  # write a row of operand bits
    CLEAR = 1  # zero an accumulator region
    WEIGHTS = 2  # accumulate a word of ternary weights
    READ = 3  # sense an accumulator and emit it through the requantizer


class Code(enum.Enum, shape=unsigned(2)):
    """2-bit ternary weight codes in a WEIGHTS word, as golden.ternary packs them."""
    ZERO = 0b00
    PLUS = 0b01
    MINUS = 0b11
    INVALID = 0b10  # counted in stat_errors, processed as a zero weight


# The engine's counters (its stat_* ports), which the cycle model predicts one for one.
STATS = ("busy", "steps", "row_reads", "row_writes", "latch_ops", "adds", "subs", "zero_ops", "skipped_bits",
         "errors")


@dataclass(frozen=True)
class FatConfig:
    """Parameters of one FAT in-memory-computing subarray with its SACU.

    rows, cols    bit cells of the subarray (cols = output positions computed at once)
    act_bits      activation width; operands are stored as u = x - zero_point in
                  act_bits + 1 bits (two's complement), one row per bit plane
    acc_bits      in-array accumulator width (rows per accumulator)
    mode          "fat": carry kept in a per-column latch, one step per bit, zero
                  weights skipped by the SACU; "parapim": carry written back to a
                  row, two steps per bit, every weight processed; "dense": FAT steps
                  but zero weights processed (the no-skip baseline)
    bitskip       beyond the paper (fat mode): skip bit planes whose result cannot
                  change (zero planes with a matching carry in every column, and the
                  sign-extension planes once every column's carry equals its operand
                  sign) -- exact
    word_weights  ternary weights per SACU word (2 bits each)
    requant_pipeline  the requantizer's pipeline (:data:`rtl.requant.config.PIPELINES`):
                  "compact" (5 stages) or "fast" (8); the cycle model follows its latency
    requant_dsp   how the fast pipeline's partial products reach the DSPs
                  (:data:`rtl.requant.config.DSPS`): "inferred" or "ecp5" (instantiated
                  MULT18X18D with their registers; needs requant_pipeline="fast")
    """

    rows: int = 1024
    cols: int = 32
    act_bits: int = 8
    acc_bits: int = 20
    mode: str = "fat"
    bitskip: bool = False
    word_weights: int = 16
    requant_pipeline: str = "compact"
    requant_dsp: str = "inferred"

    def __post_init__(self):
        check_requant(self.requant_pipeline, self.requant_dsp)
        for name in ("rows", "cols", "act_bits", "acc_bits", "word_weights"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.bitskip and self.mode != "fat":
            raise ValueError(f"bitskip needs mode 'fat', not {self.mode!r}")
        if not 2 <= self.act_bits <= 16:
            raise ValueError(f"act_bits must lie in [2, 16], not {self.act_bits}")
        if not self.op_bits + 1 <= self.acc_bits <= 32:
            raise ValueError(f"acc_bits must lie in [{self.op_bits + 1}, 32], not {self.acc_bits}")
        if self.rows < self.op_bits + self.acc_bits + 2 or self.rows > 1 << 16:
            raise ValueError(f"rows must lie in [{self.op_bits + self.acc_bits + 2}, 65536], not {self.rows}")
        if self.cols > 1024:
            raise ValueError(f"cols must be at most 1024, not {self.cols}")
        if not 1 <= self.word_weights <= 32:
            raise ValueError(f"word_weights must lie in [1, 32], not {self.word_weights}")

    # ---- derived quantities -------------------------------------------------------
    @property
    def op_bits(self) -> int:
        """Rows per stored operand: u = x - zero_point needs act_bits + 1 bits."""
        return self.act_bits + 1

    @property
    def carry_rows(self) -> tuple[int, int]:
        """ParaPIM mode keeps its carry in these two rows (alternating)."""
        return self.rows - 2, self.rows - 1

    @property
    def usable_rows(self) -> int:
        return self.rows - 2  # the top two rows are reserved for ParaPIM's carry

    @property
    def data_bits(self) -> int:
        return max(self.cols, 2 * self.word_weights, 70)

    @property
    def requant(self) -> RequantConfig:
        """The configuration of the engine's requantizer."""
        return RequantConfig(pipeline=self.requant_pipeline, dsp=self.requant_dsp)

    @property
    def latency(self) -> str:
        return "data dependent: see the cycle model (rtl.fat.model)"

    def cmd_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "op": Op,
            "addr": unsigned(16),  # LOAD: row; CLEAR/READ: accumulator base row; WEIGHTS: first operand slot
            "aux": unsigned(16),  # WEIGHTS: accumulator base row; READ: number of columns to emit
            "cnt": unsigned(8),  # WEIGHTS: number of weights in the word
            "data": unsigned(self.data_bits),  # LOAD: row bits; WEIGHTS: codes; READ: {bias, mult, shift}
        })

    def read_layout(self) -> data.StructLayout:
        """Layout of ``data`` in a READ command."""
        return data.StructLayout({"bias": signed(32), "mult": signed(32), "shift": signed(6)})
