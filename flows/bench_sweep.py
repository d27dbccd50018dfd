"""`nnaccel bench sweep`: what the sweep executor costs and gains, on this machine.

1. A 16-point co-simulation sweep (Winograd on Icarus: 4 configurations x 4 synthetic
   layers, every output checked bit for bit) on 1 and on 2 local Dask workers, each
   first with an empty cache (every design converted to Verilog and compiled) and
   then again with that cache warm: the speedup of 2 workers over 1, the time per
   point, and how the time splits (build, simulate, and what is left: scheduling,
   transfer, the table's rewrite, idle workers at the end).
2. A cycle-model sweep of >= 200 points (``docs/sweeps/phantom-model.toml``) with
   its report and plots, serially and on the local cluster.

Targets (issue 14), reported, not asserted: 2 workers >= 1.7x faster than 1 on the
16 points; per-task overhead <= 5 % of a 2 s point; >= 200 model points, report
included, <= 60 s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from flows.sweep import report, sweep

DOCS = Path(__file__).resolve().parent.parent / "docs" / "sweeps"
COSIM_SPEC = """\
# nnaccel bench sweep: 16 co-simulation points
name = "bench-cosim16"
engine = "winograd"
measure = ["model", "cosim"]
sim = "icarus"
[grid]
m = [2, 4]
channels = [1, 2]
[[workload]]
synthetic = "conv"
in_channels = [4, 8]
out_channels = 8
size = [12, 16]
images = 3
"""


@contextlib.contextmanager
def _cache(path: Path):
    old = os.environ.get("NNACCEL_CACHE")
    os.environ["NNACCEL_CACHE"] = str(path)  # local workers inherit it when they start
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("NNACCEL_CACHE", None)
        else:
            os.environ["NNACCEL_CACHE"] = old


def _run(spec: Path, out: Path, workers: int) -> dict:
    t0 = time.perf_counter()
    s = sweep(spec, out, workers=workers, progress=False)
    total = time.perf_counter() - t0
    mean_point = s["time_split_s"]["task_s"] / max(1, s["ok"])
    return {"workers": workers, "points": s["points"], "ok": s["ok"], "mismatching_points": s["mismatching_points"],
            "wall_s": s["wall_s"], "startup_s": s["startup_s"], "total_s": round(total, 2),
            "mean_point_s": round(mean_point, 3), "time_split_s": s["time_split_s"],
            "overhead_per_task_s": s.get("overhead_per_task_s"),
            "overhead_pct_of_point": round(100 * s.get("overhead_per_task_s", 0) / mean_point, 2)
            if mean_point else None}


def bench(out: Path, vectors: int = 0) -> tuple[dict, list[str], bool]:
    work = Path(out) / "sweep-bench"
    work.mkdir(parents=True, exist_ok=True)
    spec = work / "cosim16.toml"
    spec.write_text(COSIM_SPEC)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="nnaccel-bench-sweep-") as tmp:
        for workers in (1, 2):
            with _cache(Path(tmp) / f"cache{workers}"):
                for state in ("cold", "warm"):
                    d = work / f"cosim16-{workers}w-{state}"
                    shutil.rmtree(d, ignore_errors=True)
                    runs[f"{workers}w_{state}"] = _run(spec, d, workers)
    speed = {state: round(runs[f"1w_{state}"]["wall_s"] / runs[f"2w_{state}"]["wall_s"], 3)
             for state in ("cold", "warm")}
    speed_total = {state: round(runs[f"1w_{state}"]["total_s"] / runs[f"2w_{state}"]["total_s"], 3)
                   for state in ("cold", "warm")}
    model = {}
    for workers in (0, 2):
        d = work / f"model-{workers}w"
        shutil.rmtree(d, ignore_errors=True)
        model[f"{workers}w"] = _run(DOCS / "phantom-model.toml", d, workers)
        model[f"{workers}w"]["plots"] = sorted(p.name for p in d.glob("*.png"))
    t0 = time.perf_counter()
    report(work / "model-2w")
    report_s = time.perf_counter() - t0
    overhead = runs["1w_warm"]["overhead_per_task_s"] or 0.0
    result = {
        "schema": "nnaccel-bench-sweep/1", "cores": len(os.sched_getaffinity(0)),
        "cosim16": {"spec": COSIM_SPEC, "runs": runs, "speedup_2w_over_1w": speed,
                    "speedup_2w_over_1w_with_startup": speed_total},
        "model": {"spec": "docs/sweeps/phantom-model.toml", "runs": model, "report_only_s": round(report_s, 2)},
        "targets": {
            "speedup_2w_ge_1.7": {"value": speed["warm"], "cold": speed["cold"], "met": speed["warm"] >= 1.7},
            "overhead_le_5pct_of_2s": {"value_s": overhead, "pct_of_2s": round(100 * overhead / 2.0, 2),
                                       "met": overhead <= 0.1},
            "model_200_points_le_60s": {"points": model["2w"]["points"], "value_s": model["2w"]["total_s"],
                                        "met": model["2w"]["points"] >= 200 and model["2w"]["total_s"] <= 60},
        },
    }
    lines = [f"cosim, 16 points (Winograd on Icarus, {runs['1w_warm']['mean_point_s']} s a point warm):"]
    for k, r in runs.items():
        sp = r["time_split_s"]
        lines.append(f"  {k:8s} {r['wall_s']:7.1f} s (+{r['startup_s']} s start); build {sp['build_s']} s, "
                     f"simulate {sp['sim_s']} s, overhead {r['overhead_per_task_s']} s/task "
                     f"({r['overhead_pct_of_point']} % of a point); mismatching points {r['mismatching_points']}")
    lines.append(f"  2 workers over 1: {speed['warm']}x warm, {speed['cold']}x cold "
                 f"(with cluster start: {speed_total['warm']}x / {speed_total['cold']}x)")
    for k, r in model.items():
        lines.append(f"model, {r['points']} points, {k}: {r['total_s']} s with report and {len(r['plots'])} plots")
    passed = all(r["ok"] == r["points"] and not r["mismatching_points"] for r in [*runs.values(), *model.values()])
    return result, lines, passed
