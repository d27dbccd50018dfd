"""cocotb test: the harness streams vectors from memory; this test checks the outputs.

The harness (``cosim/harness.py``) owns clock, reset, stimulus pacing and
back-pressure, so no Python runs per cycle. This test waits for ``done`` and
then acts as the checker: it reads the outputs the harness wrote, compares them
exactly with the golden model's expectation and writes a result file for the
flow. Its spec comes from the file named by ``NNACCEL_SPEC``.
"""

import json
import os
import time
from pathlib import Path

import numpy as np

import cocotb
from cocotb.triggers import RisingEdge

from cosim.hexio import read_hex


def compare(got: np.ndarray, expected: np.ndarray, inputs_file: Path) -> dict:
    """Exact comparison; the first mismatch names its index, inputs, expected and got."""
    n = min(len(got), len(expected))
    bad = np.flatnonzero(got[:n] != expected[:n])
    first = None
    if bad.size:
        i = int(bad[0])
        with np.load(inputs_file) as f:
            inputs = {k: int(f[k][i]) for k in f.files if i < len(f[k])}
        first = {"index": i, "expected": int(expected[i]), "got": int(got[i]), "inputs": inputs}
    return {"mismatches": int(bad.size) + (len(expected) - n), "first_mismatch": first}


@cocotb.test()
async def stream_through_memory(dut):
    spec_path = Path(os.environ["NNACCEL_SPEC"])
    spec = json.loads(spec_path.read_text())
    run_dir = spec_path.parent
    t0 = time.perf_counter()
    await RisingEdge(dut.done)
    t1 = time.perf_counter()
    cycles = int(dut.cycles.value)
    timed_out = bool(int(dut.timed_out.value))
    n_got = int(dut.out_ptr.value)
    expected = np.load(run_dir / "expected.npy")
    got = (read_hex(run_dir / "out.hex", spec["out_width"], spec["out_signed"], n_got)
           if n_got else np.zeros(0, dtype=np.int64))
    result = {"outputs": int(len(got)), "cycles": cycles, "timed_out": timed_out,
              **compare(got, expected, run_dir / "inputs.npz"),
              "run_s": t1 - t0, "check_s": time.perf_counter() - t1}
    Path(spec["result"]).write_text(json.dumps(result))
    assert not timed_out, f"harness cycle limit reached after {cycles} cycles: {n_got} of {len(expected)} outputs"
    first = result["first_mismatch"]
    assert result["mismatches"] == 0, (
        f"{result['mismatches']} mismatches; first at index {first['index']}: inputs {first['inputs']}, "
        f"expected {first['expected']}, got {first['got']}" if first else
        f"{len(expected) - len(got)} outputs missing")
