"""Which testbench co-simulates which engine, and which runs a golden layer through it.

Each engine ``E`` has a module ``cosim.E`` with
``cosim(design, *, sim, seed, vectors, verilog, waves, timeout_s) -> list[StreamResult]``
and ``verify_layer(design, layer_vectors, *, sim, seed) -> StreamResult``; a
verifier raises :class:`NotMapped` for a layer its engine cannot run. The modules
are imported on use (they import NotMapped from here).
"""

from __future__ import annotations

import importlib
from typing import Callable

ENGINES = ("requant", "fat", "winograd", "phantom", "phantom2d")


class NotMapped(Exception):
    """An engine cannot run this layer (kernel, stride, ...); the message says why."""


def _lazy(engine: str, name: str) -> Callable:
    def call(*args, **kwargs):
        return getattr(importlib.import_module(f"cosim.{engine}"), name)(*args, **kwargs)
    call.__name__ = f"{engine}.{name}"
    return call


TESTBENCHES: dict[str, Callable] = {e: _lazy(e, "cosim") for e in ENGINES}
LAYER_VERIFIERS: dict[str, Callable] = {e: _lazy(e, "verify_layer") for e in ENGINES}


def _lookup(table: dict, engine: str, what: str) -> Callable:
    if engine not in table:
        raise ValueError(f"no {what} for engine {engine!r} (valid: {', '.join(sorted(table))})")
    return table[engine]


def testbench(engine: str) -> Callable:
    return _lookup(TESTBENCHES, engine, "co-simulation")


def layer_verifier(engine: str) -> Callable:
    return _lookup(LAYER_VERIFIERS, engine, "layer verification")
