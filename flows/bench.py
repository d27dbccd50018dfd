"""`nnaccel bench`: benchmarks that write JSON (figures, never pass/fail timing tests)."""

from __future__ import annotations

import json
from pathlib import Path

from flows.orchestrate import write_json_atomic

BENCHES = ("cosim",)


def bench(what: str, *, out: Path, vectors: int) -> int:
    if what == "cosim":
        from cosim.bench import bench_cosim
        result = bench_cosim(vectors=vectors)
    else:
        raise ValueError(f"unknown benchmark {what!r} (valid: {', '.join(BENCHES)})")
    path = Path(out) / f"{what}.json"
    write_json_atomic(path, result)
    c, p = result["cocotb"], result["cpp_harness"]
    print(f"cocotb co-simulation: {c['vectors_per_s']:,.0f} vectors/s ({result['vectors']:,} vectors, "
          f"{'PASS' if c['passed'] else 'FAIL'})")
    print(f"plain C++ harness:    {p['vectors_per_s']:,.0f} vectors/s ({'PASS' if p['passed'] else 'FAIL'})")
    print(f"ratio: {result['ratio_cocotb_to_cpp']:.3f}")
    print(f"wrote {path}")
    return 0 if c["passed"] and p["passed"] else 1
