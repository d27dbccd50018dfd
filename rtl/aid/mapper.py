"""What the AID controller runs: analog multiplies, not network layers.

The controller sequences one 4-bit x 4-bit multiply of the analog column per
conversion (write b, precharge, word-line pulses from the DAC code of a, convert);
it has no datapath for a layer, so :func:`maps` refuses every layer with one line
and :func:`plan` raises NotMapped. Its plan is a list of operand pairs
(:class:`Multiplies`), which the cycle model (:mod:`rtl.aid.model`) and the
testbench (:mod:`cosim.testbenches.aid`) take.
"""

from __future__ import annotations

from dataclasses import dataclass

from golden.errors import NotMapped
from golden.layer import Layer, LayerVectors
from rtl.aid.config import AidControllerConfig

OPERAND_MAX = 15  # a and b are 4-bit unsigned


RUNS_LAYERS = False  # the engine protocol's question "can you map this layer" is always no


def maps(layer: LayerVectors | Layer, cfg: AidControllerConfig) -> str:
    """Always a reason: the controller runs no network layer."""
    name = (layer.layer if isinstance(layer, LayerVectors) else layer).name
    return (f"not supported by aid: {name} (the AID controller sequences one analog 4-bit multiply per "
            f"conversion and runs no network layer)")


def plan(layer: LayerVectors, cfg: AidControllerConfig, **options):
    raise NotMapped(maps(layer, cfg))


@dataclass(frozen=True)
class Multiplies:
    """The controller's plan: operand pairs ``(a, b)``, one conversion each, against a
    column whose ADC answers ``adc_cycles`` cycles after the conversion request ends."""
    config: AidControllerConfig
    pairs: tuple[tuple[int, int], ...]
    adc_cycles: int

    def __post_init__(self):
        for k, (a, b) in enumerate(self.pairs):
            if not (0 <= a <= OPERAND_MAX and 0 <= b <= OPERAND_MAX):
                raise ValueError(f"pair {k}: operands must lie in 0..{OPERAND_MAX}, not ({a}, {b})")
        if not isinstance(self.adc_cycles, int) or self.adc_cycles < 1:
            raise ValueError(f"adc_cycles must be a positive integer, not {self.adc_cycles!r}")


def multiplies(pairs, cfg: AidControllerConfig, adc_cycles: int) -> Multiplies:
    return Multiplies(cfg, tuple((int(a), int(b)) for a, b in pairs), adc_cycles)
