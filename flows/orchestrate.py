"""Glue between the command line and the engines' testbenches."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import time
from pathlib import Path

from cosim.engines import testbench
from cosim.harness import DEPTH_LOG2, capacity
from flows.outdir import check_output_dir, check_output_file, write_atomic, write_json_atomic
from rtl.export import Design, fusesoc_core, generate, sim_models


def read_verilog(path: str, top: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--verilog {path}: no such file")
    text = p.read_text(errors="replace")
    if not re.search(rf"\bmodule\s+\\?{re.escape(top)}\b", text):
        raise ValueError(f"--verilog {path}: defines no module named {top!r}")
    return text


def write_design(design: Design, out_dir: Path) -> list[Path]:
    """Write ``ENGINE.v``, ``ENGINE.json`` and ``ENGINE.core`` (and our simulation models
    of the vendor primitives the Verilog instantiates, :func:`rtl.export.sim_models`);
    each appears whole or not at all."""
    files = {f"{design.engine}.v": design.verilog, f"{design.engine}.json": json.dumps(design.meta(), indent=2) + "\n",
             f"{design.engine}.core": fusesoc_core(design), **sim_models(design.verilog)}
    return [write_atomic(Path(out_dir) / name, text) for name, text in files.items()]


def vector_limit(tb, design) -> int:
    """Most random vectors ``nnaccel cosim`` may ask of an engine's testbench ``tb``: its
    ``max_vectors(design)`` when it says, else what one harness run holds (its
    ``capacity(design)``, else the stream harness's default depth, 2**DEPTH_LOG2 words)."""
    for name in ("max_vectors", "capacity"):
        if hasattr(tb, name):
            return int(getattr(tb, name)(design))
    return capacity(DEPTH_LOG2)


def run_cosim(engine: str, *, sim: str, seed: int, vectors: int, params: dict, verilog: str | None,
              waves: bool, timeout_s: float, json_out: str | None, coverage_dir: str | None = None) -> int:
    """``nnaccel cosim``: the engine's scenario suite, its verdict and exit code; with
    ``coverage_dir`` also Verilator line and toggle coverage of the engine's RTL over the
    suite (:func:`write_coverage`), reported after the verdict and not part of it."""
    t0 = time.perf_counter()
    if json_out:
        check_output_file(json_out, "--json")
    if coverage_dir is not None:
        if sim != "verilator":
            raise ValueError(f"--coverage needs --sim verilator ({sim} has no coverage)")
        check_output_dir(coverage_dir, "--coverage-dir")
    if vectors < 0:
        raise ValueError(f"--vectors must be >= 0, not {vectors}")
    if not timeout_s > 0:
        raise ValueError(f"--timeout must be a positive number of seconds, not {timeout_s}")
    design = generate(engine, params)
    text = read_verilog(verilog, design.top) if verilog else None
    module = testbench(engine)
    limit = vector_limit(module, design)
    if vectors > limit:
        raise ValueError(f"--vectors {vectors} is more than the {engine} harness holds: at most {limit} per run "
                         f"(its memory depth in words)")
    tb = module.cosim
    source = f"given Verilog {verilog}" if verilog else "generated Verilog"
    cov_runs, files = None, []
    if coverage_dir is not None:
        from cosim import coverage, runner
        if text is None:  # the same design, with Amaranth's src attributes to name Python lines
            text = coverage.annotated_verilog(design)
            source += ", with src attributes" if text != design.verilog else ""
        cov_runs = runner.new_run_dir(f"{engine}-coverage")
    print(f"cosim {engine} on {sim} ({source}, seed {seed}{', coverage' if cov_runs else ''})", flush=True)
    try:
        if cov_runs is None:
            results = tb(design, sim=sim, seed=seed, vectors=vectors, verilog=text, waves=waves, timeout_s=timeout_s)
        else:
            with runner.coverage(cov_runs) as sink:
                results = tb(design, sim=sim, seed=seed, vectors=vectors, verilog=text, waves=waves,
                             timeout_s=timeout_s)
            files = list(sink.files)
        return _report_cosim(engine, sim, seed, vectors, params, json_out, results, coverage_dir, files,
                             text if text is not None else design.verilog, design, t0)
    finally:
        if cov_runs is not None:
            shutil.rmtree(cov_runs, ignore_errors=True)


def _report_cosim(engine, sim, seed, vectors, params, json_out, results, coverage_dir, cov_files, text, design,
                  t0) -> int:
    print("build: " + ("reused cached build (design unchanged)" if results[0].build_reused else "compiled"))
    for r in results:
        print(f"  [{r.extra.get('scenario', '-')}] {r.summary()}  ({r.wall_s:.1f} s)")
        if r.waves:
            print(f"  waves: {r.waves}")
        if r.first_mismatch:
            m = r.first_mismatch
            print(f"  first mismatch: index {m['index']}, inputs {m['inputs']}, expected {m['expected']}, "
                  f"got {m['got']}")
        if not r.passed and r.log:
            print(f"  log: {r.log}")
    passed = all(r.passed for r in results)
    total = sum(r.vectors for r in results)
    cycles = sum(r.cycles for r in results)
    print(f"{'PASS' if passed else 'FAIL'}: {engine} on {sim}, {total} vectors, {cycles} cycles")
    if json_out:
        write_json_atomic(Path(json_out), {"engine": engine, "sim": sim, "seed": seed, "passed": passed,
                                           "runs": [dataclasses.asdict(r) for r in results]})
    if coverage_dir is not None:
        from cosim.coverage import summary_lines
        command = " ".join([f"nnaccel cosim {engine} --coverage --seed {seed} --vectors {vectors}",
                            *(f"--param {k}={v}" for k, v in params.items())])
        doc, paths = write_coverage(Path(coverage_dir), design, text, cov_files, command=command,
                                    verdict="PASS" if passed else "FAIL", seed=seed, vectors=vectors, params=params)
        print("\n".join(summary_lines(doc)))
        print(f"wrote {', '.join(str(p) for p in paths)} ({time.perf_counter() - t0:.1f} s in all)")
    return 0 if passed else 1


def write_coverage(out_dir: Path, design: Design, verilog: str, files: list[Path], *, command: str, verdict: str,
                   seed: int, vectors: int, params: dict) -> tuple[dict, list[Path]]:
    """Merge the runs' coverage data and write ``coverage-ENGINE.json`` (per-module line and
    toggle figures, the engine's totals, the uncovered points), ``coverage-ENGINE.md`` (the
    short report), ``coverage-ENGINE.dat`` (merged, Verilator's format) and
    ``coverage-ENGINE.v`` (the Verilog simulated, which the line numbers refer to); each
    appears whole or not at all."""
    from cosim import coverage, runner
    if not files:
        raise runner.CosimError(f"no coverage data: the {design.engine} suite ran no simulation")
    merged = coverage.merge(files)
    name = f"coverage-{design.engine}"
    doc = {"engine_name": design.engine, "command": command, "verdict": verdict, "sim": "verilator",
           "tool": runner.tool_version("verilator"), "coverage_args": list(runner.COVERAGE_ARGS), "seed": seed,
           "vectors": vectors, "params": params, "runs": len(files), "verilog_file": f"{name}.v",
           "verilog_sha256": hashlib.sha256(verilog.encode()).hexdigest(),
           **coverage.summarize(merged, f"{design.top}.v", verilog, coverage.structural_constants(verilog))}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [write_json_atomic(out_dir / f"{name}.json", doc), write_atomic(out_dir / f"{name}.md", coverage.report_md(doc)),
             write_atomic(out_dir / f"{name}.dat", coverage.dat_text(merged)), write_atomic(out_dir / f"{name}.v", verilog)]
    return doc, paths
