"""Co-simulation throughput: cocotb + memory harness against a plain Verilator C++ harness.

Both run the same generated requantizer on the same vectors (the same
binary vector file); both outputs are checked against the golden model. The bench
is `nnaccel bench cosim`.
"""

from __future__ import annotations

import hashlib
import os
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from cosim import hexio, runner
from cosim.stream import run_stream
from cosim.testbenches.requant import SCENARIOS, expected, random_vectors
from rtl.export import generate

CPP = Path(__file__).resolve().parent.parent / "cpp" / "requant_bench.cpp"


def build_cpp_harness(verilog: str) -> Path:
    """Compile the design with the plain C++ harness (cached by content)."""
    env = runner.tool_env("verilator")
    key = hashlib.sha256((verilog + CPP.read_text() + runner.tool_version("verilator")).encode()).hexdigest()[:16]
    final = runner.cache_root() / "builds" / f"requant-cpp-bench-{key}"
    exe = final / "obj" / "requant_bench"
    if exe.exists():
        return exe
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "requant.v").write_text(verilog)
    cmd = ["verilator", "--cc", "--exe", "--build", "-O3", "-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
           "--top-module", "requant", "-Mdir", "obj", "-o", "requant_bench", "-CFLAGS", "-std=c++20",
           "-MAKEFLAGS", "OPT_FAST=-O2", "requant.v", str(CPP)]
    full_env = {**os.environ, **env}
    r = subprocess.run(cmd, cwd=tmp, env=full_env, capture_output=True, text=True, timeout=900)
    (tmp / "build.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise runner.CosimError(f"C++ bench harness build failed; log: {tmp / 'build.log'}")
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    return exe


def bench(out: Path, vectors: int, seed: int = 7) -> tuple[dict, list[str], bool]:
    """``vectors`` random vectors through the requantizer twice: cocotb (end to end) and
    the plain C++ harness; their rates and ratio (``out`` is unused: no plot)."""
    if not 1 <= vectors <= 1 << 24:
        raise ValueError(f"vectors must lie in [1, {1 << 24}], not {vectors}")
    depth_log2 = max(20, (vectors - 1).bit_length())  # one harness memory holds them all
    design = generate("requant")
    sc = SCENARIOS[0]
    vec = random_vectors(np.random.default_rng(seed), vectors)
    exp = expected(vec, sc)

    # cocotb: warm the build first so compilation is not timed.
    run_stream(design, {k: v[:16] for k, v in vec.items()}, sc.statics(), exp[:16], depth_log2=depth_log2)
    t0 = time.perf_counter()
    r = run_stream(design, vec, sc.statics(), exp, seed=seed, depth_log2=depth_log2)
    cocotb_wall = time.perf_counter() - t0
    if not r.passed:
        raise runner.CosimError(f"bench co-simulation failed: {r.summary()}")

    exe = build_cpp_harness(design.verilog)
    with tempfile.TemporaryDirectory(dir=runner.cache_root()) as d:
        d = Path(d)
        payload = design.port("i__payload")
        limbs = hexio.pack_fields([(vec[n], off, w) for n, off, w, _ in payload.fields], payload.width)
        hexio.write_bin(d / "in.bin", limbs, payload.width)
        t0 = time.perf_counter()
        p = subprocess.run([str(exe), str(d / "in.bin"), str(d / "out.hex"), str(sc.zero_point), str(sc.act_min),
                            str(sc.act_max)], capture_output=True, text=True, timeout=600)
        cpp_wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise runner.CosimError(f"C++ bench harness failed: {p.stderr.strip()}")
        cpp = json.loads(p.stdout.strip().splitlines()[-1])
        got = hexio.read_hex(d / "out.hex", 8, True)
    cpp_ok = bool(np.array_equal(got, exp))
    cocotb_rate = vectors / cocotb_wall
    cpp_rate = vectors / cpp_wall
    result = {
        "design": "requant",
        "simulator": "verilator " + runner.tool_version("verilator"),
        "vectors": vectors,
        "cocotb": {
            "passed": r.passed, "cycles": r.cycles, "wall_s": cocotb_wall, "simulator_process_s": r.sim_s,
            "vectors_per_s": cocotb_rate,
            "harness_run_s": r.extra.get("run_s"), "check_s": r.extra.get("check_s"),
            "note": "end to end: pack vectors, start the simulator and cocotb, $fread, simulate, $writememh, "
                    "exact compare in the cocotb test",
        },
        "cpp_harness": {
            "passed": cpp_ok, "cycles": cpp["cycles"], "wall_s": cpp_wall, "read_s": cpp["read_s"],
            "sim_s": cpp["sim_s"], "write_s": cpp["write_s"], "vectors_per_s": cpp_rate,
            "sim_only_vectors_per_s": vectors / cpp["sim_s"] if cpp["sim_s"] > 0 else None,
            "note": "plain Verilator C++ main: reads the same binary vector file, drives the bare design each cycle",
        },
        "ratio_cocotb_to_cpp": cocotb_rate / cpp_rate,
        "targets": {"vectors_per_s": 200_000, "ratio": 0.25},
        "meets_targets": cocotb_rate >= 200_000 and cocotb_rate / cpp_rate >= 0.25,
    }
    lines = [f"cocotb co-simulation: {cocotb_rate:,.0f} vectors/s ({vectors:,} vectors, "
             f"{'PASS' if r.passed else 'FAIL'})",
             f"plain C++ harness:    {cpp_rate:,.0f} vectors/s ({'PASS' if cpp_ok else 'FAIL'})",
             f"ratio: {result['ratio_cocotb_to_cpp']:.3f}"]
    return result, lines, r.passed and cpp_ok
