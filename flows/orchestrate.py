"""Glue between the command line and the engines' testbenches."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

from cosim.engines import testbench
from rtl.export import generate


def read_verilog(path: str, top: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--verilog {path}: no such file")
    text = p.read_text(errors="replace")
    if not re.search(rf"\bmodule\s+\\?{re.escape(top)}\b", text):
        raise ValueError(f"--verilog {path}: defines no module named {top!r}")
    return text


def write_json_atomic(path: Path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


def run_cosim(engine: str, *, sim: str, seed: int, vectors: int, params: dict, verilog: str | None,
              waves: bool, timeout_s: float, json_out: str | None) -> int:
    design = generate(engine, params)
    text = read_verilog(verilog, design.top) if verilog else None
    tb = testbench(engine)
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
