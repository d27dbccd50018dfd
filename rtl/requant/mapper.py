"""A layer's requantization as the requantizer's input stream.

The requant engine runs the last step of every layer: each int32 accumulator with
its output channel's (multiplier, shift), then the layer's output zero point and
clamp. Any layer maps (its accumulators are all it needs) as long as the layer's
output range fits the configured output width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.errors import NotMapped
from golden.layer import LayerVectors
from rtl.requant.config import RequantConfig


@dataclass(frozen=True, eq=False)
class Plan:
    """One layer's accumulators as requantizer input, element by element (NCHW / NC order)."""

    layer: LayerVectors
    config: RequantConfig
    inputs: dict  # acc, mult, shift: int64 arrays, one entry per element
    statics: dict  # zero_point, act_min, act_max
    expected: np.ndarray  # the layer's int8 outputs, flattened

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def elements(self) -> int:
        return int(self.expected.size)


def maps(layer: LayerVectors, cfg: RequantConfig) -> str | None:
    """None: the requantizer takes any layer's accumulators (provided its output
    range and zero point fit ``cfg.out_bits``, which int8 layers always do at the default 8)."""
    L = layer.layer
    lo, hi = -(1 << (cfg.out_bits - 1)), (1 << (cfg.out_bits - 1)) - 1
    if not all(lo <= v <= hi for v in (L.act_min, L.act_max, L.output_zero_point)):
        return (f"{layer.name}: output range [{L.act_min}, {L.act_max}] and zero point {L.output_zero_point} "
                f"need more than the requantizer's {cfg.out_bits} output bits")
    return None


def plan(layer: LayerVectors, cfg: RequantConfig) -> Plan:
    """Per-element (acc, mult, shift), the statics and the expected outputs of ``layer``."""
    why = maps(layer, cfg)
    if why:
        raise NotMapped(why)
    L, acc = layer.layer, layer.acc
    shape = (1, -1) + (1,) * (acc.ndim - 2)  # channel axis 1 (NCHW or NC)
    mult = np.broadcast_to(layer.mult.reshape(shape), acc.shape)
    shift = np.broadcast_to(layer.shift.reshape(shape), acc.shape)
    return Plan(layer, cfg, inputs={"acc": acc.ravel(), "mult": mult.ravel(), "shift": shift.ravel()},
                statics={"zero_point": L.output_zero_point, "act_min": L.act_min, "act_max": L.act_max},
                expected=layer.y.ravel())
