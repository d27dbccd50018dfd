"""Glue between the command line and the engines' testbenches."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from cosim.engines import testbench
from cosim.harness import DEPTH_LOG2, capacity
from flows.outdir import check_output_file, write_atomic, write_json_atomic
from rtl.export import Design, fusesoc_core, generate


def read_verilog(path: str, top: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--verilog {path}: no such file")
    text = p.read_text(errors="replace")
    if not re.search(rf"\bmodule\s+\\?{re.escape(top)}\b", text):
        raise ValueError(f"--verilog {path}: defines no module named {top!r}")
    return text


def write_design(design: Design, out_dir: Path) -> list[Path]:
    """Write ``ENGINE.v``, ``ENGINE.json`` and ``ENGINE.core``; each appears whole or not at all."""
    files = {f"{design.engine}.v": design.verilog, f"{design.engine}.json": json.dumps(design.meta(), indent=2) + "\n",
             f"{design.engine}.core": fusesoc_core(design)}
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
              waves: bool, timeout_s: float, json_out: str | None) -> int:
    if json_out:
        check_output_file(json_out, "--json")
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
    print(f"cosim {engine} on {sim} ({source}, seed {seed})", flush=True)
    results = tb(design, sim=sim, seed=seed, vectors=vectors, verilog=text, waves=waves, timeout_s=timeout_s)
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
    return 0 if passed else 1
