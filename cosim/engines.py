"""Which testbench co-simulates which engine, and which runs a golden layer through it."""

from __future__ import annotations

from typing import Callable

from cosim import requant


class NotMapped(Exception):
    """An engine cannot run this layer (kernel, stride, ...); the message says why."""

# engine name -> cosim(design, *, sim, seed, vectors, verilog, waves, timeout_s) -> list[StreamResult]
TESTBENCHES: dict[str, Callable] = {
    "requant": requant.cosim,
    "fat": lambda *a, **k: _fat().cosim(*a, **k),
}

# engine name -> verify_layer(design, layer_vectors, *, sim, seed) -> StreamResult
# (a verifier raises NotMapped for a layer its engine cannot run)
LAYER_VERIFIERS: dict[str, Callable] = {
    "requant": requant.verify_layer,
    "fat": lambda *a, **k: _fat().verify_layer(*a, **k),
}


def _fat():
    from cosim import fat  # imports NotMapped from this module
    return fat


def _winograd(name: str) -> Callable:
    """cosim.winograd's ``name``, imported on use (that module imports NotMapped from here)."""
    def call(*args, **kwargs):
        from cosim import winograd
        return getattr(winograd, name)(*args, **kwargs)
    return call


TESTBENCHES["winograd"] = _winograd("cosim")
LAYER_VERIFIERS["winograd"] = _winograd("verify_layer")


def _phantom(name: str) -> Callable:
    """cosim.phantom's ``name``, imported on use (that module imports NotMapped from here)."""
    def call(*args, **kwargs):
        from cosim import phantom
        return getattr(phantom, name)(*args, **kwargs)
    return call


TESTBENCHES["phantom"] = _phantom("cosim")
LAYER_VERIFIERS["phantom"] = _phantom("verify_layer")


def _lookup(table: dict, engine: str, what: str) -> Callable:
    if engine not in table:
        raise ValueError(f"no {what} for engine {engine!r} (valid: {', '.join(sorted(table))})")
    return table[engine]


def testbench(engine: str) -> Callable:
    return _lookup(TESTBENCHES, engine, "co-simulation")


def layer_verifier(engine: str) -> Callable:
    return _lookup(LAYER_VERIFIERS, engine, "layer verification")
