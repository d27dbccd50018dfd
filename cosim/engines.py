"""Which testbench co-simulates which engine."""

from __future__ import annotations

from typing import Callable

from cosim import requant

# engine name -> cosim(design, *, sim, seed, vectors, verilog, waves, timeout_s) -> list[StreamResult]
TESTBENCHES: dict[str, Callable] = {
    "requant": requant.cosim,
}


def testbench(engine: str) -> Callable:
    if engine not in TESTBENCHES:
        raise ValueError(f"no co-simulation for engine {engine!r} (valid: {', '.join(sorted(TESTBENCHES))})")
    return TESTBENCHES[engine]
