"""`nnaccel bench`: benchmarks that write JSON (figures, never pass/fail timing tests).

Each entry of BENCHES runs one engine's benchmark (the logic lives with the
engine, in cosim/) and returns (result dict, summary lines, passed).
"""

from __future__ import annotations

from pathlib import Path

from flows.orchestrate import write_json_atomic


def _cosim(out: Path, vectors: int):
    from cosim.bench import bench_cosim
    result = bench_cosim(vectors=vectors)
    c, p = result["cocotb"], result["cpp_harness"]
    lines = [f"cocotb co-simulation: {c['vectors_per_s']:,.0f} vectors/s ({result['vectors']:,} vectors, "
             f"{'PASS' if c['passed'] else 'FAIL'})",
             f"plain C++ harness:    {p['vectors_per_s']:,.0f} vectors/s ({'PASS' if p['passed'] else 'FAIL'})",
             f"ratio: {result['ratio_cocotb_to_cpp']:.3f}"]
    return result, lines, c["passed"] and p["passed"]


def _fat(out: Path, vectors: int):
    from cosim.fat_bench import bench_fat
    return bench_fat(out)


BENCHES = {"cosim": _cosim, "fat": _fat}


def _winograd(out: Path, vectors: int):
    from cosim.winograd_bench import bench_winograd
    return bench_winograd(out)


BENCHES["winograd"] = _winograd


def _phantom(out: Path, vectors: int):
    from cosim.phantom_bench import bench_phantom
    return bench_phantom(out)


BENCHES["phantom"] = _phantom


def bench(what: str, *, out: Path, vectors: int) -> int:
    if what not in BENCHES:
        raise ValueError(f"unknown benchmark {what!r} (valid: {', '.join(BENCHES)})")
    out = Path(out)
    result, lines, passed = BENCHES[what](out, vectors)
    path = out / f"{what}.json"
    write_json_atomic(path, result)
    for line in lines:
        print(line)
    print(f"wrote {path}")
    return 0 if passed else 1
