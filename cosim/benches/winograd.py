"""`nnaccel bench winograd`: throughput of the Winograd engine measured from RTL cycle counts.

For F(2x2,3x3) and F(4x4,3x3) (default parallel channels) the dense int8 demo net's
3x3 stride-1 convolutions run through the generated Verilog on Verilator with no
idle input cycles and no back-pressure, every output checked exactly. From the
harness's cycle counts:

* equivalent MACs per multiplier per cycle = direct-convolution MACs of the layers
  (N * O * Ho * Wo * C * 9, useful outputs only) / (Winograd multipliers * cycles);
  the ideal is m*m*9 / (m+2)**2 (2.25 and 4.0), less the pipeline fill and drain and
  any edge-tile or channel-group waste;
* pipeline utilization = input beats / cycles (cycles in which the multipliers take a tile).
"""

from __future__ import annotations

import platform
from pathlib import Path

from cosim import runner
from cosim.testbenches.winograd import demo_layers
from cosim.testbenches.winograd import run as run_plan
from golden.jobs import serial
from golden.layer import LayerVectors
from rtl.export import generate
from rtl.winograd.config import WinogradConfig
from rtl.winograd.mapper import maps, plan

TARGETS = {2: 2.15, 4: 3.8}  # equivalent MACs per multiplier per cycle (issue 5)
IMAGES = 16  # demo images per layer: conv3 at m = 2 fills the harness memory in one run


def bench_config(cfg: WinogradConfig, layers: list[LayerVectors], sim: str = "verilator") -> dict:
    design = generate("winograd", config=cfg)
    rows = []
    for vec in layers:
        ls = plan(vec, cfg)
        r = run_plan(design, ls, sim=sim, seed=1, idle=0.0, stall=0.0)
        rows.append({
            "layer": vec.name, "input_shape": list(vec.x.shape), "weight_shape": list(vec.w.shape),
            "padding": vec.layer.padding, "passed": r.passed, "mismatches": r.mismatches,
            "input_beats": ls.n_beats, "output_beats": ls.n_out, "cycles": r.cycles,
            "model_cycles": r.extra["model_cycles"], "runs": r.extra["runs"],
            "equivalent_macs": ls.equivalent_macs,
            "equivalent_macs_per_multiplier_per_cycle": ls.equivalent_macs / (cfg.multipliers * r.cycles),
            "pipeline_utilization": ls.n_beats / r.cycles,
        })
    macs, cycles, beats = (sum(r[k] for r in rows) for k in ("equivalent_macs", "cycles", "input_beats"))
    eff = macs / (cfg.multipliers * cycles)
    return {
        "config": cfg.params(), "tile": f"F({cfg.m}x{cfg.m},3x3)",
        "multipliers": cfg.multipliers,
        "multiplier_widths": [cfg.bits("U"), cfg.bits("V")],
        "requantizer_multipliers_32x32": cfg.requant_lanes,
        "ideal_macs_per_multiplier_per_cycle": cfg.m * cfg.m * 9 / cfg.a ** 2,
        "equivalent_macs_per_multiplier_per_cycle": eff,
        "pipeline_utilization": beats / cycles,
        "target": TARGETS[cfg.m], "target_met": eff >= TARGETS[cfg.m],
        "cycles": cycles, "equivalent_macs": macs, "passed": all(r["passed"] for r in rows),
        "layers": rows,
    }


def job(j: tuple) -> dict:
    """One configuration of the bench: (config, layers)."""
    return bench_config(*j)


def bench(out: Path, vectors: int = 0, channels: int | None = None, run=None):
    """Both tile sizes on the demo layers (``vectors`` is ignored: the layers are fixed);
    returns (result, summary lines, passed). ``run(fn, items, labels)`` runs the two
    configurations (one after the other by default; ``nnaccel bench`` passes the
    executor's)."""
    base = WinogradConfig() if channels is None else WinogradConfig(channels=channels)
    layers = [v for v in demo_layers(IMAGES) if maps(v, base) is None]
    configs = [WinogradConfig(m=m, channels=base.channels, max_in_channels=base.max_in_channels) for m in (2, 4)]
    jobs = [(cfg, layers) for cfg in configs]
    results = (run or serial())(job, jobs, [f"F({c.m}x{c.m},3x3)" for c in configs])
    result = {"bench": "winograd", "simulator": runner.tool_version("verilator"), "images": IMAGES,
              "net": "digits int8 (3x3 stride-1 convolutions)", "python": platform.python_version(),
              "configs": results}
    lines = []
    for r in results:
        lines.append(f"{r['tile']}: {r['equivalent_macs_per_multiplier_per_cycle']:.3f} equivalent MACs per "
                     f"multiplier per cycle (ideal {r['ideal_macs_per_multiplier_per_cycle']:.2f}, target "
                     f"{r['target']}: {'met' if r['target_met'] else 'NOT met'}), utilization "
                     f"{r['pipeline_utilization']:.4f}, {r['multipliers']} multipliers, {r['cycles']} cycles, "
                     f"{'bit-exact' if r['passed'] else 'MISMATCH'}")
    return result, lines, all(r["passed"] for r in results)
