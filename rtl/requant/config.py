"""The requantizer's configuration: the single source for its RTL, testbench and report."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from amaranth.hdl import signed
from amaranth.lib import data

from golden.quant import SHIFT_MAX, SHIFT_MIN


@dataclass(frozen=True)
class RequantConfig:
    """The requantizer's parameters: the single source for RTL, testbench and report."""

    acc_bits: int = 32  # accumulator and multiplier width (TFLite: 32)
    out_bits: int = 8  # output width (int8)
    shift_bits: int = 6  # signed shift field; valid values SHIFT_MIN..SHIFT_MAX

    LATENCY = 5  # pipeline stages from input handshake to output valid

    def __post_init__(self):
        if self.acc_bits != 32:
            raise ValueError(f"acc_bits must be 32 (TFLite's int32 arithmetic), not {self.acc_bits}")
        if not 2 <= self.out_bits <= 16:
            raise ValueError(f"out_bits must lie in [2, 16], not {self.out_bits}")
        if self.shift_bits != 6:
            raise ValueError(f"shift_bits must be 6 (shifts {SHIFT_MIN}..{SHIFT_MAX}), not {self.shift_bits}")

    @property
    def latency(self) -> int:
        return self.LATENCY

    def in_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "acc": signed(self.acc_bits),
            "mult": signed(self.acc_bits),
            "shift": signed(self.shift_bits),
        })

    def params(self) -> dict:
        return asdict(self)
