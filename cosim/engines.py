"""The co-simulation side of the engine table (:mod:`rtl.engines`), found by convention.

Engine ``E``'s testbench is the module ``cosim.testbenches.E`` with

``cosim(design, *, sim, seed, vectors, verilog, waves, timeout_s) -> list[StreamResult]``
    the scenario suite of ``nnaccel cosim E``;
``run(design, plan, *, sim, seed, idle, stall, verilog, waves, timeout_s) -> StreamResult``
    one plan (from ``rtl.engines.get_engine(E).plan``) through the RTL: outputs
    compared exactly, cycles, and the RTL's counters in ``extra["stats"]``;
``words(plan) -> int`` and ``capacity(design) -> int``
    the harness words a plan needs and the harness holds, so that
    :func:`run_layer` can split a layer into image batches that fit.

An engine that runs no layer (``aid``) has ``cosim`` only. Benchmarks are the
modules of ``cosim.benches``, each with ``bench(out, vectors) -> (result, lines, passed)``.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import numpy as np

from golden.errors import NotMapped  # noqa: F401  (re-exported)
from rtl.engines import ENGINES, get_engine


def testbench(engine: str) -> ModuleType:
    """``cosim.testbenches.<engine>``; ValueError for an engine not in the table."""
    get_engine(engine)
    return importlib.import_module(f"cosim.testbenches.{engine}")


def run_layer(design, layer, *, sim: str = "verilator", seed: int = 1, timeout_s: float = 300,
              verilog: str | None = None, **options):
    """One layer (:class:`golden.layer.LayerVectors`) through the design's engine, in image
    batches that fit the harness (a batch that turns out not to fit is split in two);
    NotMapped when the engine cannot run it. ``options`` go to the engine's planner.
    ``extra["model_cycles"]`` holds the cycle model's figure for the same batches and
    ``extra["model_counters"]`` every figure it predicts (summed over the batches)."""
    engine = get_engine(design.engine)
    cfg = design.config
    tb = testbench(design.engine)
    one = engine.plan(layer.select(0, 1), cfg, **options)  # NotMapped with the engine's reason
    capacity = tb.capacity(design)
    from cosim.stream import in_batches

    def run(part):
        plan = engine.plan(part, cfg, **options)
        if tb.words(plan) > capacity and part.images > 1:
            return in_batches(part, -(-part.images // 2), run)
        r = tb.run(design, plan, sim=sim, seed=seed, timeout_s=timeout_s, verilog=verilog)
        model = engine.cycles(plan)
        r.extra["model_cycles"] = int(model["cycles"])
        r.extra["model_counters"] = {k: int(v) for k, v in model.items()
                                     if isinstance(v, (int, np.integer)) and not isinstance(v, bool)}
        return r

    return in_batches(layer, max(1, capacity // max(1, tb.words(one))), run)


def energy_counters(r) -> dict:
    """The counters an engine's energy table is given for a run (:func:`run_layer`'s
    result): the RTL's stat_* counters and the run's cycles; what the RTL does not count
    (a static dataflow's beats, say) from the model of the same batches."""
    counters = {**r.extra.get("model_counters", {}), **r.extra.get("stats", {})}
    counters.setdefault("cycles", r.cycles)
    return counters


def benches() -> dict[str, ModuleType]:
    """Every benchmark module in ``cosim.benches``, by name."""
    import cosim.benches as pkg
    return {m.name: importlib.import_module(f"cosim.benches.{m.name}")
            for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name) if not m.name.startswith("_")}


def engines() -> list[str]:
    return list(ENGINES)
