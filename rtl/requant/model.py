"""Cycle model of the requantizer: one element per cycle through a fixed pipeline.

With no idle input cycles and no back-pressure, n elements take
``n + latency + HARNESS_CYCLES`` cycles, counted as the co-simulation harness
counts them (from reset to the last output). Exact: the requant testbench checks
it on every unpaced run.
"""

from __future__ import annotations

from rtl.requant.config import RequantConfig

HARNESS_CYCLES = 2  # cosim.harness: its input gate is a register, and it sees the last output a cycle late


def stream_cycles(elements: int, cfg: RequantConfig) -> int:
    """Cycles of ``elements`` inputs streamed back to back, as the harness counts them."""
    return elements + cfg.latency + HARNESS_CYCLES


def cycles(plan) -> dict:
    """``cycles`` of a plan (:func:`rtl.requant.mapper.plan`); the requantizer has no counters."""
    return {"cycles": stream_cycles(plan.elements, plan.config)}
