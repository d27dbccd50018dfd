"""cocotb test: the harness streams vectors from memory; this test checks the outputs.

The harness (``cosim/harness.py``) owns clock, reset, stimulus pacing and
back-pressure, so no Python runs per cycle. This test waits for ``done`` and
then acts as the checker: it compares the outputs the harness wrote with the
golden model's expectation (written by the flow in the same ``$writememh``
format), exactly, and writes a result file for the flow. Its spec comes from the
file named by ``NNACCEL_SPEC``.

The module imports no numpy: in the simulator's embedded interpreter that import
alone costs more than checking a million outputs. A byte-equal file is a pass;
anything else is compared line by line to find the first mismatch. Output words of
several lanes tagged by their source (``lanes`` in the spec) are unpacked and sorted
by tag, stably: each source must deliver its own outputs in order.
"""

import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.triggers import RisingEdge


def words(text: bytes) -> list[bytes]:
    """Hex words of a ``$writememh`` file (Icarus adds ``// 0x...`` address comments)."""
    return [w.lower() for ln in text.splitlines() for w in ln.split(b"//", 1)[0].split() if not w.startswith(b"@")]


def to_int(word: bytes, width: int, signed: bool):
    try:
        v = int(word, 16)
    except ValueError:
        return word.decode(errors="replace")  # x / z: shown as written
    return v - (1 << width) if signed and v >> (width - 1) else v


def input_record(spec: dict, in_file: Path, index: int) -> dict:
    """Fields of input vector ``index``, decoded from the harness's binary vector file."""
    nbytes = (spec["in_width"] + 7) // 8
    with open(in_file, "rb") as f:
        f.seek(index * nbytes)
        word = int.from_bytes(f.read(nbytes), "big")
    return {name: to_int(format((word >> off) & ((1 << w) - 1), "x").encode(), w, sig)
            for name, off, w, sig in spec["in_fields"]}


def compare(got: bytes, expected: bytes, spec: dict, in_file: Path) -> dict:
    """Exact comparison; the first mismatch names its index, expected and got, and its
    inputs when outputs and inputs correspond one to one."""
    width, signed = spec["out_width"], spec["out_signed"]
    if spec.get("lanes"):
        return compare_lanes(got, expected, spec)
    if got == expected:
        return {"outputs": expected.count(b"\n"), "mismatches": 0, "first_mismatch": None}
    g, e = words(got), words(expected)
    bad = [i for i, (a, b) in enumerate(zip(g, e)) if a != b]
    n_bad = len(bad) + abs(len(e) - len(g))
    first = None
    if bad:
        i = bad[0]
        inputs = input_record(spec, in_file, i) if spec["n_in"] == spec["n_out"] else {}
        first = {"index": i, "expected": to_int(e[i], width, signed), "got": to_int(g[i], width, signed),
                 "inputs": inputs}
    return {"outputs": len(g), "mismatches": n_bad, "first_mismatch": first}


def compare_lanes(got: bytes, expected: bytes, spec: dict) -> dict:
    """Output words of n lanes (valid top bit; source tag from bit 8 up): the valid lanes,
    sorted by tag (stably), must equal the expected list, which is source by source."""
    n, bits = spec["lanes"]
    mask = (1 << (bits - 1)) - 1
    g = []
    for w in words(got):
        try:
            v = int(w, 16)
        except ValueError:
            return {"outputs": len(g), "mismatches": 1, "first_mismatch": {"index": len(g), "expected": None,
                                                                          "got": w.decode(errors="replace"),
                                                                          "inputs": {}}}
        g += [(v >> (bits * j)) & mask for j in range(n) if (v >> (bits * j + bits - 1)) & 1]
    g.sort(key=lambda e: e >> 8)
    e = [int(w, 16) for w in words(expected)]
    bad = [i for i, (a, b) in enumerate(zip(g, e)) if a != b]
    first = None
    if bad:
        i = bad[0]

        def show(x):
            return {"core": x >> 8, "value": (x & 0xFF) - ((x & 0x80) << 1)}
        first = {"index": i, "expected": show(e[i]), "got": show(g[i]), "inputs": {}}
    return {"outputs": len(g), "mismatches": len(bad) + abs(len(e) - len(g)), "first_mismatch": first}


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
    extra = int(dut.extra_out.value)  # outputs the design emitted after the last expected one
    out = run_dir / "out.hex"
    got = out.read_bytes() if n_got and out.exists() else b""
    result = {"cycles": cycles, "timed_out": timed_out,
              **compare(got, (run_dir / "expected.hex").read_bytes(), spec, run_dir / "in.bin"),
              "extra_outputs": extra, "run_s": t1 - t0, "check_s": time.perf_counter() - t1}
    Path(spec["result"]).write_text(json.dumps(result))
    assert not timed_out, (f"harness cycle limit reached after {cycles} cycles: {result['outputs']} of "
                           f"{spec['n_out']} outputs")
    assert extra == 0, f"{extra} output(s) after the last expected one"
    first = result["first_mismatch"]
    assert result["mismatches"] == 0, (
        f"{result['mismatches']} mismatches; first at index {first['index']}: inputs {first['inputs']}, "
        f"expected {first['expected']}, got {first['got']}" if first else
        f"{result['mismatches']} outputs missing or extra")
