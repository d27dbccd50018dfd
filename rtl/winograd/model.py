"""Cycle model of the Winograd engine: one input beat per cycle, plus the pipeline's fill.

The engine takes one input beat (an input tile of one input channel with the
weight tiles of ``channels`` output channels) per cycle and never stalls on its
own; an output beat leaves ``config.latency`` cycles after the handshake of its
group's last input beat. Unstalled, a stream of B beats that starts on an empty
pipeline therefore takes ``B + latency + HARNESS_CYCLES`` harness cycles (the
harness's input gate is a register, and it sees the last output a cycle late, as
for every engine); each separate run of the harness (a layer longer than the
harness memory runs in several) pays the fill again.
"""

from __future__ import annotations

from rtl.winograd.mapper import LayerStream

HARNESS_CYCLES = 2  # cosim.harness: its input gate is a register, and it sees the last output a cycle late


def cycles(plan: LayerStream, runs: int = 1) -> dict:
    """``cycles`` of ``plan`` streamed without idle input or back-pressure, in ``runs``
    harness runs, and the work the static dataflow does (the engine has no counters):
    ``beats`` (input beats) and ``groups`` (output groups: beats marked ``last``)."""
    return {"cycles": plan.n_beats + runs * (plan.config.latency + HARNESS_CYCLES), "beats": plan.n_beats,
            "groups": int(plan.beats["last"].sum())}
