"""Co-simulate a stream design against expected outputs, bulk data through memories.

:func:`run_stream` packs the input fields into ``$readmemh`` files, builds (or
reuses) the design inside :mod:`cosim.harness`, runs the cocotb test
``cosim.tb_stream`` on Verilator or Icarus, and returns what the test's checker
found. The expected outputs come from the golden model; the comparison is exact.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cosim import hexio, runner
from cosim.harness import DEPTH_LOG2, HARNESS_TOP, static_ports, stream_harness
from rtl.export import Design, sim_models

TEST_MODULE = "cosim.tb_stream"


@dataclass
class StreamResult:
    engine: str
    sim: str
    passed: bool
    vectors: int
    outputs: int
    cycles: int
    mismatches: int
    first_mismatch: dict | None
    timed_out: bool
    build_reused: bool
    wall_s: float
    sim_s: float
    waves: str | None = None
    log: str | None = None
    extra: dict = field(default_factory=dict)

    def summary(self) -> str:
        word = "PASS" if self.passed else "FAIL"
        s = (f"{word} {self.engine} on {self.sim}: {self.vectors} vectors, {self.outputs} outputs, "
             f"{self.cycles} cycles, {self.mismatches} mismatches")
        if self.timed_out:
            s += " (harness cycle limit reached)"
        return s


def build_stream(design: Design, sim: str, *, verilog: str | None = None, waves: bool = False,
                 depth_log2: int = DEPTH_LOG2, lanes: tuple[int, int] | None = None) -> runner.Build:
    """Build the design (or a given Verilog text for it) inside the stream harness
    (``depth_log2``: harness memory depth, see :func:`cosim.harness.fit_depth_log2`),
    with our models of the vendor primitives it instantiates (:func:`rtl.export.sim_models`)."""
    text = verilog if verilog is not None else design.verilog
    sources = {f"{design.top}.v": text, **sim_models(text),
               "nnaccel_harness.v": stream_harness(design, depth_log2=depth_log2, visible_clock=waves,
                                                         lanes=lanes)}
    return runner.build(sources, HARNESS_TOP, sim, waves=waves, tag=design.engine)


def run_stream(design: Design, inputs: dict[str, np.ndarray], statics: dict[str, int], expected: np.ndarray, *,
               sim: str = "verilator", verilog: str | None = None, seed: int = 1, idle: float = 0.0,
               stall: float = 0.0, waves: bool = False, timeout_s: float = 300, workdir: Path | None = None,
               keep: bool = False, max_cycles: int | None = None, depth_log2: int = DEPTH_LOG2,
               lanes: tuple[int, int] | None = None) -> StreamResult:
    """Stream ``inputs`` (payload field arrays) through ``design``; compare with ``expected``.

    ``idle`` and ``stall`` are the probabilities of an idle input cycle and of an
    output cycle without ``ready`` (back-pressure). ``depth_log2`` sets the
    harness memories' depth (default 2**20 words; wide payloads may ask for less).
    ``lanes`` = (n, bits): every output word holds n lanes, each an output tagged with
    its source from bit 8 up and a valid top bit; ``expected`` lists the outputs (without
    the valid bit) source by source, and the check sorts the valid lanes by tag, stably.
    An input field wider than 64 bits is given as an ``(n, limbs)`` uint64 array (limb 0
    least significant, as :func:`cosim.hexio.pack_fields` takes it); so are the expected
    output words when the output is wider than 64 bits (``expected`` of shape
    ``(n, ceil(width / 64))``, dtype uint64).
    """
    t0 = time.perf_counter()
    payload = design.port("i__payload")
    out = design.port("o__payload")
    names = [f[0] for f in payload.fields] or ["payload"]
    if set(inputs) != set(names):
        raise ValueError(f"inputs must be exactly the payload fields {names}, not {sorted(inputs)}")
    n = len(next(iter(inputs.values())))
    ew = lanes[1] - 1 if lanes else out.width
    packed = ew > 64 and np.ndim(expected) == 2 and np.asarray(expected).dtype == np.uint64
    if packed:
        expected = np.asarray(expected)
        if expected.shape[1] != -(-ew // 64):
            raise ValueError(f"packed expected words of a {ew}-bit output have {-(-ew // 64)} limbs, "
                             f"not {expected.shape[1]}")
    else:
        expected = np.asarray(expected, dtype=np.int64).ravel()
    n_out = len(expected)
    wanted = [p.name for p in static_ports(design)]
    if set(statics) != set(wanted):
        raise ValueError(f"static inputs must be exactly {wanted}, not {sorted(statics)}")

    if max(n, n_out) > 1 << depth_log2:
        raise ValueError(f"{max(n, n_out)} words exceed the harness depth of {1 << depth_log2}")
    b = build_stream(design, sim, verilog=verilog, waves=waves, depth_log2=depth_log2, lanes=lanes)
    run_dir = Path(workdir) if workdir else runner.new_run_dir(f"{design.engine}-{sim}")
    run_dir.mkdir(parents=True, exist_ok=True)
    fields = payload.fields or (("payload", 0, payload.width, payload.signed),)
    limbs = hexio.pack_fields([(inputs[nm], off, w) for nm, off, w, _ in fields], payload.width)
    hexio.write_bin(run_dir / "in.bin", limbs, payload.width)
    cfg = np.array([int(statics[p]) for p in wanted] or [0], dtype=np.int64)
    hexio.write_hex(run_dir / "cfg.hex", hexio.pack_fields([(cfg, 0, 64)], 64), 64)
    hexio.write_hex(run_dir / "expected.hex", expected if packed else hexio.pack_fields([(expected, 0, ew)], ew), ew)
    spec = {"out_width": out.width, "out_signed": out.signed, "n_out": n_out, "n_in": n,
            "in_width": payload.width, "in_fields": [list(f) for f in fields],
            "result": str(run_dir / "result.json"), "lanes": list(lanes) if lanes else None}
    (run_dir / "spec.json").write_text(json.dumps(spec))
    limit = max_cycles or 64 * (n + n_out) + 10_000
    plusargs = [f"+IN={run_dir / 'in.bin'}", f"+OUT={run_dir / 'out.hex'}", f"+CFG={run_dir / 'cfg.hex'}",
                f"+N_IN={n}", f"+N_OUT={n_out}", f"+IDLE={int(round(idle * 256))}",
                f"+STALL={int(round(stall * 256))}", f"+SEED={seed}", f"+MAX_CYCLES={limit}",
                f"+STATS={run_dir / 'stats.txt'}"]
    r = runner.run(b, TEST_MODULE, run_dir, plusargs=plusargs, extra_env={"NNACCEL_SPEC": str(run_dir / "spec.json")},
                   timeout_s=timeout_s, seed=seed)
    res_file = run_dir / "result.json"
    if not res_file.exists():
        raise runner.CosimError(f"{sim} simulation of {design.engine} ended without a result; log: {r.log}")
    res = json.loads(res_file.read_text())
    extra = int(res.get("extra_outputs", 0))
    result = StreamResult(engine=design.engine, sim=sim, passed=r.passed and res["mismatches"] == 0
                          and not res["timed_out"] and not extra, vectors=n, outputs=res["outputs"], cycles=res["cycles"],
                          mismatches=res["mismatches"], first_mismatch=res["first_mismatch"],
                          timed_out=res["timed_out"], build_reused=b.reused, wall_s=time.perf_counter() - t0,
                          sim_s=r.wall_s, waves=str(r.waves) if r.waves else None, log=str(r.log),
                          extra={k: res[k] for k in ("run_s", "check_s")})
    if extra:
        result.extra["extra_outputs"] = extra
        result.extra["error"] = f"{extra} output(s) after the last expected one (the harness watches a margin)"
    stats_file = run_dir / "stats.txt"
    if stats_file.exists():
        result.extra["stats"] = {k: int(v) for k, v in (ln.split() for ln in stats_file.read_text().splitlines() if ln)}
    if not (keep or waves or not result.passed or workdir):
        shutil.rmtree(run_dir, ignore_errors=True)
        result.log = None
    return result


def merge(total: StreamResult, r: StreamResult) -> StreamResult:
    """Two runs of one layer (image batches ``total`` then ``r``) as one result: outputs,
    cycles, mismatches and every integer counter in ``extra`` (``stats``, ``model``,
    ``work``) summed; the first mismatch and the first error kept, its index counted
    over the whole layer."""
    first = total.first_mismatch
    if r.first_mismatch and first is None:
        first = dict(r.first_mismatch, index=r.first_mismatch["index"] + total.outputs)
    out = dataclasses.replace(
        total, passed=total.passed and r.passed, vectors=total.vectors + r.vectors,
        outputs=total.outputs + r.outputs, cycles=total.cycles + r.cycles,
        mismatches=total.mismatches + r.mismatches, first_mismatch=first,
        timed_out=total.timed_out or r.timed_out, wall_s=total.wall_s + r.wall_s, sim_s=total.sim_s + r.sim_s,
        log=total.log or r.log, extra=dict(total.extra))
    if "error" in r.extra:
        out.extra.setdefault("error", r.extra["error"])
    for key in SUMMED:
        a, b = total.extra.get(key), r.extra.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extra[key] = {k: v + b.get(k, 0) for k, v in a.items()
                              if isinstance(v, int) and not isinstance(v, bool) and k not in NOT_SUMMED}
        elif isinstance(a, int) and isinstance(b, int):
            out.extra[key] = a + b
    out.extra["batches"] = total.extra.get("batches", 1) + r.extra.get("batches", 1)
    return out


SUMMED = ("stats", "model", "work", "model_cycles", "model_counters", "runs", "output_values", "equivalent_macs")
NOT_SUMMED = ("error_chunk", "error_core", "k")  # indices and shapes, not counts


def in_batches(layer, batch: int, run) -> StreamResult:
    """``run`` on the layer's images (a :class:`golden.layer.LayerVectors`), ``batch``
    at a time; the results merged into one (:func:`merge`)."""
    n = layer.images
    total = None
    for lo in range(0, n, max(1, batch)):
        r = run(layer.select(lo, min(n, lo + batch)))
        total = r if total is None else merge(total, r)
    return total
