"""The AID controller's configuration: the single source for its RTL, testbench and model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rtl.common.params import check_ints


@dataclass(frozen=True)
class AidControllerConfig:
    """Parameters of the controller (the single source for RTL, testbench and model)."""

    code_bits: int = 10
    adc_bits: int = 8
    unit_cycles: int = 1          # LSB word-line pulse width in clock cycles (clock period = t_unit / unit_cycles)
    precharge_cycles: int = 6
    settle_cycles: int = 1
    codes: tuple = tuple(range(16))   # DAC code per operand a (from analog.circuit RootDac/LinearDac)

    def __post_init__(self):
        check_ints(self, {"code_bits": (4, 16), "adc_bits": (1, 16), "unit_cycles": (1, 64),
                          "precharge_cycles": (1, 1024), "settle_cycles": (0, 1024)})
        if len(self.codes) != 16:
            raise ValueError(f"codes must hold 16 DAC codes (one per operand a), not {len(self.codes)}")
        for a, c in enumerate(self.codes):
            if not isinstance(c, int) or not 0 <= c < (1 << self.code_bits):
                raise ValueError(f"codes[{a}] must be an integer in 0..{(1 << self.code_bits) - 1}, not {c!r}")

    def params(self) -> dict:
        return asdict(self)
