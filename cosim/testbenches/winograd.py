"""Winograd engine testbench: layers tiled by the mapper, streamed through the harness.

Each layer becomes the engine's plan, its input beats and expected output beats
(:func:`rtl.winograd.mapper.plan`, or :func:`~rtl.winograd.mapper.map_layer` for the
random layers; expectations from the golden direct convolution and requantizer).
The one stream path (:func:`cosim.stream.run_stream`, with a smaller harness memory:
beats are wide) streams the beats with random idle cycles and back-pressure, the
cocotb checker :mod:`cosim.tb_stream` compares the output beats exactly, and on a
mismatch this module names the first wrong output (image, channel, row, column,
expected, got). A plan longer than the harness memory (one image of a large layer,
or the random layers with many ``vectors``) runs as several simulations of the same
build, split at output-beat boundaries; :func:`cosim.engines.run_layer` batches a
layer's images so that this is rare.

Scenarios (:func:`cosim`): random layers (odd sizes, padding 0 and 1, many input
channels, output channels not a multiple of the engine's parallel channels,
full-range extremes, and extremes at the configuration's ``max_in_channels``, where
the accumulators reach the widths the configuration was analysed for), two layers
chained in one simulation (:func:`run_chained`: the second starts on a pipeline the
first has used, so a beat that ignores ``first`` is caught), the dense int8 demo
net's 3x3 stride-1 convolutions, and ``requant-params`` (:func:`requant_params_layers`:
the requantizers' parameters at their extremes, which the random layers never reach).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape

from cosim import hexio, runner
from cosim.stream import StreamResult, run_stream
from golden.layer import LayerVectors
from golden.quant import INT32_MAX, INT32_MIN
from rtl.export import Design
from rtl.winograd import model
from rtl.winograd.config import ACT_BITS, WinogradConfig
from rtl.winograd.mapper import LayerStream, map_layer, maps, plan

DEPTH_LOG2 = 15  # stream memory of the harness: 32768 beats of up to ~2 kbit


def capacity(design: Design) -> int:
    """Input or output beats the harness memory holds."""
    return 1 << DEPTH_LOG2


def words(plan: LayerStream) -> int:
    """Harness words ``plan`` needs: its input beats (never fewer than its output beats)."""
    return max(plan.n_beats, plan.n_out)


def beat_fields(ls: LayerStream, lo: int = 0, hi: int | None = None) -> dict[str, np.ndarray]:
    """Input beats ``lo:hi`` as the payload's fields (:meth:`WinogradConfig.in_layout`): a
    field of at most 64 bits as int64 values, a wider one as ``(n, limbs)`` uint64 words."""
    lay = ls.config.in_layout()
    parts: dict[str, list] = {}
    for name, idx, off, bits in ls.config.in_elements():
        arr = ls.beats[name][lo:hi]
        parts.setdefault(name, []).append((arr[(slice(None),) + idx] if idx else arr, off - lay[name].offset, bits))
    out = {}
    for name, fields in parts.items():
        width = Shape.cast(lay[name].shape).width
        limbs = hexio.pack_fields(fields, width)
        out[name] = limbs if width > 64 else limbs[:, 0].view(np.int64)
    return out


def output_words(cfg: WinogradConfig, out: np.ndarray) -> np.ndarray:
    """Output beats ``(n, channels, m*m)`` int8 as the engine's output words: int64 values
    for a word of at most 64 bits, else ``(n, limbs)`` uint64."""
    mm, width = cfg.m * cfg.m, Shape.cast(cfg.out_layout()).width
    fields = [(out[:, p, k], (p * mm + k) * ACT_BITS, ACT_BITS) for p in range(cfg.channels) for k in range(mm)]
    limbs = hexio.pack_fields(fields, width)
    return limbs if width > 64 else limbs[:, 0].view(np.int64)


def lanes(cfg: WinogradConfig, word: int | str) -> list[int | None]:
    """An output word (as the checker reports it) as its int8 lanes; x/z as None."""
    n = cfg.channels * cfg.m * cfg.m
    if not isinstance(word, int):
        return [None] * n
    raw = [(word >> (ACT_BITS * k)) & 0xFF for k in range(n)]
    return [v - 256 if v > 127 else v for v in raw]


def name_mismatch(ls: LayerStream, first: dict | None, received: int, out_lo: int) -> dict | None:
    """The first wrong (or missing) output of a run whose outputs start at output beat
    ``out_lo``, from the checker's first wrong word (``first``) or the count received:
    where it is (image, channel, row, column), expected and got."""
    exp = ls.expected.reshape(ls.n_out, -1)
    if first is not None:
        k = out_lo + first["index"]
        for lane, g in enumerate(lanes(ls.config, first["got"])):
            e = int(exp[k, lane])
            if g != e:
                return {"index": k, "inputs": ls.locate(k, lane), "expected": e, "got": g}
    k = out_lo + received
    if k < ls.n_out:
        return {"index": k, "inputs": ls.locate(k, 0), "expected": int(exp[k, 0]), "got": "missing"}
    return None


def run(design: Design, plan: LayerStream, *, sim: str = "verilator", seed: int = 1, idle: float = 0.0,
        stall: float = 0.0, verilog: str | None = None, waves: bool = False, timeout_s: float = 300,
        keep: bool = False) -> StreamResult:
    """Stream a plan through the engine's RTL; exact check of every output beat
    (``outputs`` counts the layer's outputs among the beats received, without edge
    tiles' surplus and padding channels).

    A plan longer than the harness memory runs in several simulations of one build
    (seeds ``seed``, ``seed + 1``, ...), split at output-beat boundaries; the result
    sums them (``extra["runs"]``) and stops at the first failing run."""
    ls = plan
    if ls.config != design.config:
        raise ValueError(f"layer mapped for {ls.config}, design is {design.config}")
    t0 = time.perf_counter()
    chunks = ls.chunks(capacity(design))
    useful = ls.useful.sum(axis=1).cumsum()  # layer outputs in the first k + 1 output beats
    cycles = outputs = mismatches = 0
    sim_s = 0.0
    timed_out, passed, first, log, wave, reused = False, True, None, None, None, None
    for k, (lo, hi, olo, ohi) in enumerate(chunks):
        r = run_stream(design, beat_fields(ls, lo, hi), ls.statics, output_words(ls.config, ls.expected[olo:ohi]),
                       sim=sim, verilog=verilog, seed=seed + k, idle=idle, stall=stall, waves=waves,
                       timeout_s=timeout_s, keep=keep, max_cycles=16 * (hi - lo + ohi - olo) + 10_000,
                       depth_log2=DEPTH_LOG2)
        reused = r.build_reused if reused is None else reused
        wave = wave or r.waves
        cycles += r.cycles
        received = olo + min(r.outputs, ohi - olo)
        outputs += int(useful[received - 1] if received else 0) - int(useful[olo - 1] if olo else 0)
        sim_s += r.sim_s
        timed_out |= r.timed_out
        if not r.passed:
            passed = False
            mismatches += max(1, r.mismatches)
            log = r.log
            first = name_mismatch(ls, r.first_mismatch, r.outputs, olo)
            break
    r = StreamResult(engine=design.engine, sim=sim, passed=passed, vectors=ls.n_beats, outputs=outputs,
                     cycles=cycles, mismatches=mismatches, first_mismatch=first, timed_out=timed_out,
                     build_reused=bool(reused), wall_s=time.perf_counter() - t0, sim_s=sim_s, waves=wave,
                     log=log, extra={"runs": len(chunks), "output_values": int(np.prod(ls.out_shape)),
                                     "equivalent_macs": ls.equivalent_macs,
                                     "model_cycles": model.cycles(ls, len(chunks))["cycles"]})
    return check_cycles(r, paced=bool(idle or stall))


def check_cycles(r: StreamResult, *, paced: bool) -> StreamResult:
    """A run without idle input or back-pressure fails when its cycles differ from the
    cycle model's (the engine has no counters of its own: its cycles are its counter)."""
    if r.passed and not paced and r.cycles != r.extra["model_cycles"]:
        r.passed = False
        r.extra["error"] = f"counter cycles: RTL {r.cycles}, cycle model {r.extra['model_cycles']}"
    return r


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
    RandomLayer("extremes-max-in-channels", 1, 0, 0, 3, 4, 0, True, 0.0, 0.2),  # 0: config.max_in_channels
)


def random_layer(cfg: WinogradConfig, spec: RandomLayer, rng: np.random.Generator, images: int | None = None):
    n, c, o = images or spec.images, spec.in_channels or cfg.max_in_channels, cfg.channels + spec.out_channels
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


def demo_layers(n_images: int = 4, seed: int = 0) -> list[LayerVectors]:
    """The dense int8 demo net's layer vectors (the flow keeps the 3x3 stride-1 convolutions)."""
    from golden.nets import digits

    net = digits.build("int8", seed=seed, cache_dir=runner.cache_root() / "nets")
    return list(digits.layer_vectors(net, n_images))


def cosim(design: Design, *, sim: str = "verilator", seed: int = 1, vectors: int = 20000,
          verilog: str | None = None, waves: bool = False, timeout_s: float = 300,
          demo: bool = True) -> list[StreamResult]:
    """Random layers (about ``vectors`` input beats in all, at least one image each), the
    int8 demo net's 3x3 stride-1 convolutions, two layers chained in one run, then
    ``requant-params`` (:func:`requant_params_layers`, a fixed set: ``vectors`` does not
    size it); stops at the first failure."""
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
            if maps(vec, cfg) is None:
                jobs.append((f"demo-int8-{vec.name}", lambda vec=vec: plan(vec, cfg), 0.1, 0.1))
    jobs.append(("two-layers-chained-in-one-run", lambda: chained_layers(cfg, rng), 0.1, 0.2))
    corners = functools.cache(lambda: requant_params_layers(cfg, seed))  # built when its first run starts
    for k, sc in enumerate(requant_params_statics()):
        jobs.append((requant_params_name(sc), lambda k=k: corners()[k][1], 0.0, 0.0))
    for k, (name, make, idle, stall) in enumerate(jobs):
        made = make()
        go = run_chained if isinstance(made, list) else run
        r = go(design, made, sim=sim, verilog=verilog, seed=seed + k, idle=idle, stall=stall,
               waves=waves, timeout_s=timeout_s)
        r.extra["scenario"] = name + (f": {r.extra['error']}" if "error" in r.extra else "")
        results.append(r)
        if not r.passed:
            break
    return results


def chained_layers(cfg: WinogradConfig, rng: np.random.Generator) -> list[LayerStream]:
    """Two random layers with the same static inputs (zero points, clamp), so they can
    stream back to back through one simulation."""
    zp, ozp = int(rng.integers(-128, 128)), int(rng.integers(-20, 20))
    out = []
    # the second has one input channel: its beats are first and last at once, on accumulators
    # the first layer left full
    for k, (c, h, w, pad) in enumerate(((5, 6, 7, 1), (1, 5, 4, 0))):
        o = cfg.channels + k
        out.append(map_layer(cfg, rng.integers(-128, 128, (1, c, h, w)), rng.integers(-127, 128, (o, c, 3, 3)),
                             rng.integers(-(1 << 16), 1 << 16, o), zp, rng.integers(1 << 30, 1 << 31, o),
                             rng.integers(-22, 2, o), ozp, -128, 127, pad, f"chained-{k}"))
    return out


def params_layer(cfg: WinogradConfig, name: str, acc, mult, shift, statics: dict, rng: np.random.Generator, *,
                 input_zero_point: int = 127) -> LayerStream:
    """A layer whose requantizers see exactly the vectors ``(acc[j], mult[j], shift[j])``
    under ``statics`` (zero_point, act_min, act_max), every vector in every requantizer
    of the engine: mutation samples the ``channels * m * m`` requantizers alike, and a
    vector that reaches one of them only leaves the others' faults alive.

    One image of one input channel, (m + 2) x (m + 2), padding 0: one tile, all of whose
    m x m outputs are real (no edge surplus). The image is constant (-128 for
    ``input_zero_point`` 127: u = -255; 127 for -128: u = 255), so the m x m outputs of an
    output channel share one accumulator, bias + u * sum(w). Vector j is output channels
    j * channels .. (j + 1) * channels - 1, one output-channel group: each channel has its
    own random int8 weights (-128 among them) and the bias acc[j] - u * sum(w). A
    channel whose bias would leave int32 (acc within 9 * 255 * 128 of a limit) has no
    weights: its bias is the accumulator itself. The engine forms bias + (A^T M A) / s**2
    and keeps 32 bits, the golden model (:func:`golden.conv.conv2d_int`) refuses a sum
    outside int32: both agree because every sum here is acc[j], inside int32."""
    acc, mult, shift = (np.repeat(np.asarray(v, dtype=np.int64), cfg.channels) for v in (acc, mult, shift))
    o = len(acc)
    x = np.full((1, 1, cfg.a, cfg.a), -128 if input_zero_point >= 0 else 127, dtype=np.int64)
    u = int(x[0, 0, 0, 0]) - input_zero_point
    w = rng.integers(-128, 128, (o, 1, 3, 3)) * (rng.random((o, 1, 3, 3)) < 0.6)
    w[::7, 0, 1, 1] = -128
    bias = acc - u * w.sum(axis=(1, 2, 3))
    wide = (bias < INT32_MIN) | (bias > INT32_MAX)
    w[wide], bias[wide] = 0, acc[wide]
    return map_layer(cfg, x, w, bias, input_zero_point, mult, shift, statics["zero_point"], statics["act_min"],
                     statics["act_max"], 0, name)


def requant_params_statics() -> tuple:
    """The static settings of ``requant-params``' runs, in order: the requantizer suite's
    scenarios, then its :data:`~cosim.testbenches.requant.STATIC_SWEEP`."""
    from cosim.testbenches import requant as rq

    return rq.SCENARIOS + rq.STATIC_SWEEP


def requant_params_name(sc) -> str:
    return f"requant-params zp={sc.zero_point} [{sc.act_min}, {sc.act_max}]"


def requant_params_layers(cfg: WinogradConfig, seed: int) -> list[tuple[str, list[LayerStream] | LayerStream]]:
    """``requant-params``: the requantizers' parameters at their extremes through the
    engine, as (scenario name, a chain of layers or one layer), each a run of its own.

    The random layers keep multipliers in [2**30, 2**31), shifts in [-22, 1], output
    zero points in [-20, 20), act_max at 127 and accumulators far from the int32 limits:
    the multipliers' low bits, left shifts around the int32 wrap, the saturating
    product, the halves of both roundings and most bits of the clamp bounds are never
    tested. Here (every vector in every requantizer, :func:`params_layer`):

    * under the requantizer suite's first static setting (zero point -3, [-128, 127]),
      over u = -255, two layers chained in one run:
      :func:`cosim.testbenches.requant.params_vectors` (edge and corner vectors:
      multipliers INT32_MIN, INT32_MAX, 0, -1, every shift from -31 to 30, the
      saturating and near-saturating products, exact and near halves of both roundings,
      left shifts around the int32 wrap, accumulators at both int32 limits; and every
      multiplier bit k, raw 2**k, with accumulators that make it show in int8 and place
      the product at and 2**k either side of a half at shift 0), then
      :func:`~cosim.testbenches.requant.deep_half_vectors` (near halves of the rounding
      shift with an int8 quotient at every right shift);
    * one run per other static setting of the requantizer suite (its second scenario
      and :data:`~cosim.testbenches.requant.STATIC_SWEEP`: with the first, every bit of
      the zero point and of both clamp bounds at both values), outputs swept across the
      whole clamp (:func:`~cosim.testbenches.requant.sweep_vectors`), over u = 255 and
      u = -255 in turn."""
    from cosim.testbenches import requant as rq

    rng = np.random.default_rng(seed)
    base, *others = requant_params_statics()
    name = requant_params_name(base)
    chain = []
    for part, v in (("params", rq.params_vectors(rng)), ("deep-halves", rq.deep_half_vectors(rng))):
        chain.append(params_layer(cfg, f"{name} {part}", v["acc"], v["mult"], v["shift"], base.statics(), rng))
    out = [(name, chain)]
    for k, sc in enumerate(others):
        v = rq.sweep_vectors(sc)
        out.append((requant_params_name(sc), params_layer(cfg, requant_params_name(sc), v["acc"], v["mult"],
                                                          v["shift"], sc.statics(), rng,
                                                          input_zero_point=-128 if k % 2 == 0 else 127)))
    return out


def run_chained(design: Design, plans: list[LayerStream], *, sim: str = "verilator", seed: int = 1,
                idle: float = 0.0, stall: float = 0.0, verilog: str | None = None, waves: bool = False,
                timeout_s: float = 300) -> StreamResult:
    """Several plans' beats back to back in one simulation (same static inputs), every
    output beat checked exactly; a mismatch is named in the plan it belongs to (and the
    plan's layer named)."""
    if len({tuple(sorted(p.statics.items())) for p in plans}) != 1:
        raise ValueError("chained plans must share their static inputs")
    fields = [beat_fields(p) for p in plans]
    beats = {k: np.concatenate([f[k] for f in fields]) for k in fields[0]}
    expected = np.concatenate([output_words(p.config, p.expected) for p in plans])
    n_in, n_out = sum(p.n_beats for p in plans), sum(p.n_out for p in plans)
    if max(n_in, n_out) > capacity(design):
        raise ValueError(f"chained plans need {max(n_in, n_out)} beats, the harness holds {capacity(design)}")
    r = run_stream(design, beats, plans[0].statics, expected, sim=sim, verilog=verilog, seed=seed, idle=idle,
                   stall=stall, waves=waves, timeout_s=timeout_s, max_cycles=16 * (n_in + n_out) + 10_000,
                   depth_log2=DEPTH_LOG2)
    if r.first_mismatch:
        olo = 0
        for p in plans:
            if r.first_mismatch["index"] < olo + p.n_out:
                r.first_mismatch = name_mismatch(p, dict(r.first_mismatch, index=r.first_mismatch["index"] - olo),
                                                 r.outputs - olo, 0)
                if r.first_mismatch is not None:
                    r.first_mismatch["layer"] = p.layer.name
                break
            olo += p.n_out
    r.outputs = int(sum(p.useful.sum() for p in plans)) if r.passed else r.outputs
    r.extra.update(runs=1, model_cycles=n_in + plans[0].config.latency + model.HARNESS_CYCLES,
                   equivalent_macs=sum(p.equivalent_macs for p in plans),
                   output_values=sum(int(np.prod(p.out_shape)) for p in plans))
    return check_cycles(r, paced=bool(idle or stall))
