"""Winograd engine testbench: layers tiled by the mapper, streamed through the harness.

Each layer becomes the engine's input beats and expected output beats
(:func:`rtl.winograd.mapper.map_layer`, expectations from the golden direct
convolution and requantizer); the generic memory harness (:mod:`cosim.harness`,
with a smaller memory: beats are wide) streams the beats with random idle cycles
and back-pressure, the cocotb checker :mod:`cosim.tb_stream` compares the output
beats exactly, and on a mismatch this module names the first wrong output
(image, channel, row, column, expected, got). Layers longer than the stream
memory run as several simulations of the same build.

Scenarios (:func:`cosim`): random layers (odd sizes, padding 0 and 1, many input
channels, output channels not a multiple of the engine's parallel channels,
full-range extremes) and the dense int8 demo net's 3x3 stride-1 convolutions.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cosim import hexio, runner
from cosim.engines import NotMapped
from cosim.harness import HARNESS_TOP, static_ports, stream_harness
from cosim.stream import TEST_MODULE, StreamResult
from rtl.export import Design
from rtl.winograd.config import WinogradConfig
from rtl.winograd.mapper import LayerStream, cycle_model, map_layer, map_vectors, unsupported

DEPTH_LOG2 = 15  # stream memory of the harness: 32768 beats of up to ~2 kbit


def _width(layout) -> int:
    from amaranth.hdl import Shape
    return Shape.cast(layout).width


def pack_beats(ls: LayerStream, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Input beats ``lo:hi`` as ``(n, limbs)`` uint64 words of the payload layout."""
    fields = []
    for name, idx, off, bits in ls.config.in_elements():
        arr = ls.beats[name][lo:hi]
        fields.append((arr[(slice(None),) + idx] if idx else arr, off, bits))
    return hexio.pack_fields(fields, _width(ls.config.in_layout()))


def pack_outputs(cfg: WinogradConfig, out: np.ndarray) -> np.ndarray:
    """Output beats ``(n, channels, m*m)`` int8 as ``(n, limbs)`` uint64 words."""
    mm = cfg.m * cfg.m
    fields = [(out[:, p, k], (p * mm + k) * 8, 8) for p in range(cfg.channels) for k in range(mm)]
    return hexio.pack_fields(fields, _width(cfg.out_layout()))


def unpack_outputs(cfg: WinogradConfig, path: Path) -> list[list[int]]:
    """Output beats from a ``$writememh`` file as lists of int8 lanes (x/z shown as None)."""
    from cosim.tb_stream import words

    mm = cfg.m * cfg.m
    beats = []
    for w in words(Path(path).read_bytes()) if Path(path).exists() else []:
        try:
            v = int(w, 16)
        except ValueError:
            beats.append([None] * (cfg.channels * mm))
            continue
        lanes = [(v >> (8 * k)) & 0xFF for k in range(cfg.channels * mm)]
        beats.append([x - 256 if x > 127 else x for x in lanes])
    return beats


def build(design: Design, sim: str, *, verilog: str | None = None, waves: bool = False) -> runner.Build:
    sources = {f"{design.top}.v": verilog if verilog is not None else design.verilog,
               "nnaccel_harness.v": stream_harness(design, depth_log2=DEPTH_LOG2, visible_clock=waves)}
    return runner.build(sources, HARNESS_TOP, sim, waves=waves, tag=design.engine)


def _run_chunk(design, b, ls, chunk, run_dir, *, seed, idle, stall, timeout_s) -> dict:
    cfg = ls.config
    lo, hi, olo, ohi = chunk
    iw, ow = _width(cfg.in_layout()), _width(cfg.out_layout())
    run_dir.mkdir(parents=True, exist_ok=True)
    hexio.write_bin(run_dir / "in.bin", pack_beats(ls, lo, hi), iw)
    wanted = [p.name for p in static_ports(design)]
    cfg_words = np.array([int(ls.statics[p]) for p in wanted], dtype=np.int64)
    hexio.write_hex(run_dir / "cfg.hex", hexio.pack_fields([(cfg_words, 0, 64)], 64), 64)
    hexio.write_hex(run_dir / "expected.hex", pack_outputs(cfg, ls.expected[olo:ohi]), ow)
    n_in, n_out = hi - lo, ohi - olo
    spec = {"out_width": ow, "out_signed": False, "n_out": n_out, "n_in": n_in, "in_width": iw,
            "in_fields": [], "result": str(run_dir / "result.json")}
    (run_dir / "spec.json").write_text(json.dumps(spec))
    plusargs = [f"+IN={run_dir / 'in.bin'}", f"+OUT={run_dir / 'out.hex'}", f"+CFG={run_dir / 'cfg.hex'}",
                f"+N_IN={n_in}", f"+N_OUT={n_out}", f"+IDLE={int(round(idle * 256))}",
                f"+STALL={int(round(stall * 256))}", f"+SEED={seed}",
                f"+MAX_CYCLES={16 * (n_in + n_out) + 10_000}"]
    r = runner.run(b, TEST_MODULE, run_dir, plusargs=plusargs,
                   extra_env={"NNACCEL_SPEC": str(run_dir / "spec.json")}, timeout_s=timeout_s, seed=seed)
    if not (run_dir / "result.json").exists():
        raise runner.CosimError(f"{b.sim} simulation of {design.engine} ended without a result; log: {r.log}")
    res = json.loads((run_dir / "result.json").read_text())
    res["passed"] = r.passed and res["mismatches"] == 0 and not res["timed_out"]
    res["log"], res["sim_s"] = str(r.log), r.wall_s
    return res


def first_mismatch(ls: LayerStream, got: list, out_offset: int) -> dict | None:
    """The first wrong (or missing) output: where it is, expected and got."""
    exp = ls.expected.reshape(ls.n_out, -1)
    for k, row in enumerate(got):
        for lane, g in enumerate(row):
            e = int(exp[out_offset + k, lane])
            if g != e:
                return {"index": out_offset + k, "inputs": ls.locate(out_offset + k, lane), "expected": e, "got": g}
    k = len(got)
    if out_offset + k < ls.n_out:
        return {"index": out_offset + k, "inputs": ls.locate(out_offset + k, 0),
                "expected": int(exp[out_offset + k, 0]), "got": "missing"}
    return None


def run_layer(design: Design, ls: LayerStream, *, sim: str = "verilator", verilog: str | None = None,
              seed: int = 1, idle: float = 0.0, stall: float = 0.0, waves: bool = False,
              timeout_s: float = 300, keep: bool = False) -> StreamResult:
    """Stream a mapped layer through the engine's RTL; exact check of every output."""
    if ls.config != design.config:
        raise ValueError(f"layer mapped for {ls.config}, design is {design.config}")
    t0 = time.perf_counter()
    b = build(design, sim, verilog=verilog, waves=waves)
    parent = runner.cache_root() / "runs"
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{design.engine}-{sim}-", dir=parent))
    chunks = ls.chunks(1 << DEPTH_LOG2)
    cycles = outputs = mismatches = 0
    sim_s = 0.0
    timed_out, passed, first, log = False, True, None, None
    for k, chunk in enumerate(chunks):
        run_dir = root / f"run{k}" if len(chunks) > 1 else root
        res = _run_chunk(design, b, ls, chunk, run_dir, seed=seed + k, idle=idle, stall=stall, timeout_s=timeout_s)
        cycles += res["cycles"]
        outputs += res["outputs"]
        sim_s += res["sim_s"]
        timed_out |= res["timed_out"]
        if not res["passed"]:
            passed = False
            mismatches += max(1, res["mismatches"])
            log = res["log"]
            first = first_mismatch(ls, unpack_outputs(ls.config, run_dir / "out.hex")[: chunk[3] - chunk[2]],
                                   chunk[2])
            break
    result = StreamResult(engine=design.engine, sim=sim, passed=passed, vectors=ls.n_beats, outputs=outputs,
                          cycles=cycles, mismatches=mismatches, first_mismatch=first, timed_out=timed_out,
                          build_reused=b.reused, wall_s=time.perf_counter() - t0, sim_s=sim_s,
                          waves=None, log=log,
                          extra={"runs": len(chunks), "output_values": int(np.prod(ls.out_shape)),
                                 "equivalent_macs": ls.equivalent_macs,
                                 "model_cycles": cycle_model(ls.config, ls.n_beats, len(chunks))})
    if waves:
        found = sorted(root.rglob("*.vcd")) + sorted(root.rglob("*.fst"))
        result.waves = str(found[0]) if found else None
    if passed and not (keep or waves):
        shutil.rmtree(root, ignore_errors=True)
    return result


# ----------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class RandomLayer:
    name: str
    images: int
    in_channels: int
    out_channels: int  # added to the engine's parallel channels
    height: int
    width: int
    padding: int
    extremes: bool  # full-range inputs, weights and zero points
    idle: float
    stall: float


RANDOM_LAYERS = (
    RandomLayer("odd-7x5-pad1", 2, 3, 1, 7, 5, 1, False, 0.2, 0.3),
    RandomLayer("odd-9x11-pad0-many-channels", 1, 37, 2, 9, 11, 0, False, 0.0, 0.1),
    RandomLayer("3x3-pad0-one-output", 3, 5, 0, 3, 3, 0, False, 0.1, 0.0),
    RandomLayer("extremes-6x13-pad1", 1, 64, 1, 6, 13, 1, True, 0.0, 0.0),
)


def random_layer(cfg: WinogradConfig, spec: RandomLayer, rng: np.random.Generator, images: int | None = None):
    n, c, o = images or spec.images, spec.in_channels, cfg.channels + spec.out_channels
    if spec.extremes:
        x = rng.choice(np.array([-128, 127, -127, 0], dtype=np.int64), size=(n, c, spec.height, spec.width))
        w = rng.choice(np.array([-128, 127, 0], dtype=np.int64), size=(o, c, 3, 3))
        zp = int(rng.choice([-128, 127]))
        bias = rng.integers(-(1 << 28), 1 << 28, o)
    else:
        x = rng.integers(-128, 128, (n, c, spec.height, spec.width))
        w = rng.integers(-127, 128, (o, c, 3, 3))
        zp = int(rng.integers(-128, 128))
        bias = rng.integers(-(1 << 16), 1 << 16, o)
    mult = rng.integers(1 << 30, 1 << 31, o)
    # Shifts that keep typical accumulators inside int8 after requantization, some left shifts.
    shift = rng.integers(-22, 2, o)
    ozp = int(rng.integers(-20, 20))
    lo = int(rng.choice([-128, ozp]))
    return map_layer(cfg, x, w, bias, zp, mult, shift, ozp, lo, 127, spec.padding, spec.name)


def demo_layers(n_images: int = 4, seed: int = 0) -> list[dict]:
    """The dense int8 demo net's layer vectors (the flow keeps the 3x3 stride-1 convolutions)."""
    from golden.nets import digits

    net = digits.build("int8", seed=seed, cache_dir=runner.cache_root() / "nets")
    return list(digits.layer_vectors(net, n_images))


def mappable(vec: dict) -> bool:
    return unsupported(vec["kind"], tuple(np.shape(vec["w"])[2:]) if vec["kind"] == "conv" else (),
                       int(vec["stride"])) is None


def cosim(design: Design, *, sim: str = "verilator", seed: int = 1, vectors: int = 20000,
          verilog: str | None = None, waves: bool = False, timeout_s: float = 300,
          demo: bool = True) -> list[StreamResult]:
    """Random layers (about ``vectors`` input beats in all, at least one image each) and
    the int8 demo net's 3x3 stride-1 convolutions; stops at the first failure."""
    if vectors < 0:
        raise ValueError(f"vectors must be >= 0, not {vectors}")
    cfg = design.config
    rng = np.random.default_rng(seed)
    results = []
    jobs = []
    for spec in RANDOM_LAYERS:
        one = random_layer(cfg, spec, np.random.default_rng(0), images=1).n_beats
        images = max(1, min(64, vectors // (len(RANDOM_LAYERS) * one)))
        jobs.append((spec.name, lambda spec=spec, images=images: random_layer(cfg, spec, rng, images),
                     spec.idle, spec.stall))
    if demo:
        for vec in demo_layers():
            if mappable(vec):
                jobs.append((f"demo-int8-{vec['name']}", lambda vec=vec: map_vectors(cfg, vec), 0.1, 0.1))
    for k, (name, make, idle, stall) in enumerate(jobs):
        r = run_layer(design, make(), sim=sim, verilog=verilog, seed=seed + k, idle=idle, stall=stall,
                      waves=waves, timeout_s=timeout_s)
        r.extra["scenario"] = name
        results.append(r)
        if not r.passed:
            break
    return results


def verify_layer(design: Design, vec: dict, *, sim: str = "verilator", seed: int = 1,
                 timeout_s: float = 300) -> StreamResult:
    """Run one golden layer through the engine (convolution and requantization in RTL),
    exactly compared with its ``y``; NotMapped for a layer that is not 3x3 stride 1."""
    kernel = tuple(np.shape(vec["w"])[2:]) if vec["kind"] == "conv" else ()
    why = unsupported(vec["kind"], kernel, int(vec["stride"]))
    if why:
        raise NotMapped(f"not supported by winograd: {vec['name']} ({why})")
    ls = map_vectors(design.config, vec)
    n, o, ho, wo = ls.out_shape
    if not np.array_equal(ls.y_ext[:, :o, :ho, :wo], np.asarray(vec["y"], dtype=np.int64)):
        raise ValueError(f"{vec['name']}: the mapper's expectation differs from the layer's golden y")
    r = run_layer(design, ls, sim=sim, seed=seed, idle=0.1, stall=0.1, timeout_s=timeout_s)
    r.extra["scenario"] = vec["name"]
    return r
