"""`nnaccel sweep SPEC -o DIR`: design-space sweeps on the executor (:mod:`flows.executor`).

A sweep is an engine, a set of configurations (a grid and/or random samples), a
set of workloads and what to measure; a *point* is one configuration on one
workload, and one task. The spec is TOML (``docs/sweeps.md``, one example per
engine in ``docs/sweeps/``)::

    engine = "phantom"
    measure = ["model", "cosim"]      # model | cosim | energy | synth
    sim = "verilator"                 # cosim: verilator | icarus
    [params]                          # fixed parameters
    window = 6
    [grid]                            # every combination
    threads = [1, 2, 4]
    [random]                          # and/or random samples
    samples = 8
    seed = 0
    params = { chunk = [64, 128], values = { min = 8, max = 32 } }
    [[workload]]
    demo = "sparse"                   # the digits demo net's layers (int8 | sparse | ternary)
    images = 2
    [[workload]]
    synthetic = "conv"                # conv | depthwise | linear; list values expand
    in_channels = 8
    size = 8
    weight_density = [0.2, 0.5]
    [[workload]]
    vectors = "out/import/vectors"    # .npz layer vectors (`nnaccel import` writes them)
    [report]
    pareto = ["cycles", "luts"]       # two columns, both minimized

Points are evaluated by :func:`evaluate` on a worker, which gets everything it
needs in the task (the layer vectors included), so workers share no files. Each
finished point is added at once to ``DIR/points.parquet`` (the whole table
rewritten atomically: a reader never sees half a table) keyed by the point's hash;
a rerun skips the points already there that succeeded. ``DIR/summary.md``,
``DIR/pareto.png`` and ``DIR/param-<name>.png`` are rebuilt from the table
(``nnaccel sweep --report DIR`` rebuilds them alone).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MEASURES = ("model", "cosim", "energy", "synth")
SIMS = ("verilator", "icarus")
DEMO_NETS = ("int8", "sparse", "ternary")
SYNTHETIC_KINDS = ("conv", "depthwise", "linear")
SYNTHETIC_FIELDS = {"in_channels": 8, "out_channels": 8, "size": 8, "kernel": 3, "stride": 1, "padding": None,
                    "weight_density": 1.0, "activation_density": 1.0, "ternary": False, "images": 1, "seed": 0}
TOP_KEYS = {"engine", "measure", "sim", "seed", "target", "freq_mhz", "place", "timeout_s", "name", "params",
            "grid", "random", "workload", "report"}
TABLE = "points.parquet"
MAX_POINTS = 20000  # configurations x workloads in one sweep (the table is rewritten per point)


class SpecError(ValueError):
    """A bad sweep spec: one line naming the field."""


# ----------------------------------------------------------------------------- the spec


@dataclass
class Workload:
    label: str
    meta: dict  # how it was made (kind, shape, densities, path...)
    vectors: list  # golden.layer.LayerVectors, made on the client and sent with each task

    @property
    def work(self) -> int:
        """Multiply-accumulates of all its layers and images (what a point's time grows with)."""
        return sum(v.layer.macs_per_image * v.images for v in self.vectors)


@dataclass
class Spec:
    path: str
    name: str
    engine: str
    measure: tuple[str, ...]
    sim: str
    seed: int
    target: str
    freq_mhz: float
    timeout_s: float
    configs: list[dict]  # parameter text per configuration, in order
    workloads: list[Workload]
    pareto: tuple[str, str] | None
    swept: list[str]  # the parameters that vary
    text: str = ""
    place: bool = True  # synth: place and route (Fmax), or synthesis only (resources)

    def points(self) -> list["Point"]:
        """Workload by workload, so the tasks running at once are different configurations
        (each builds its own design in parallel, rather than waiting for one build)."""
        return [Point(self, params, w) for w in (self.workloads or [Workload("-", {"kind": "none"}, [])])
                for params in self.configs]


@dataclass
class Point:
    spec: Spec
    params: dict
    workload: Workload

    @property
    def key(self) -> str:
        """Hash of what the point computes: engine, parameters, workload (its vectors'
        content for file workloads), measures and how they are taken."""
        s = self.spec
        h = hashlib.sha256(json.dumps(
            {"engine": s.engine, "params": self.params, "workload": self.workload.meta, "measure": s.measure,
             "sim": s.sim if "cosim" in s.measure else None, "seed": s.seed,
             "target": [s.target, s.freq_mhz, s.place] if "synth" in s.measure else None},
            sort_keys=True, default=str).encode())
        for v in self.workload.vectors if self.workload.meta.get("kind") == "vectors" else ():
            for a in (v.x, v.w, v.bias, v.mult, v.shift):
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    def task(self) -> dict:
        s = self.spec
        return {"key": self.key, "engine": s.engine, "params": self.params, "measure": list(s.measure),
                "sim": s.sim, "seed": s.seed, "target": s.target, "freq_mhz": s.freq_mhz, "place": s.place,
                "timeout_s": s.timeout_s, "workload": self.workload.label, "workload_meta": self.workload.meta,
                "vectors": self.workload.vectors,
                # synthesis is the configuration's, not the workload's: measured on the first workload's point
                "synth": "synth" in s.measure and self.workload is (s.workloads or [self.workload])[0]}


def _field(where: str, value, types, what: str):
    if not isinstance(value, types) or isinstance(value, bool) and bool not in (types if isinstance(types, tuple)
                                                                                  else (types,)):
        raise SpecError(f"{where}: must be {what}, not {value!r}")
    return value


def _as_list(where: str, value) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SpecError(f"{where}: an empty list")
    for v in values:
        if not isinstance(v, (int, float, str, bool)):
            raise SpecError(f"{where}: values must be numbers, strings or booleans, not {v!r}")
    return values


def load_spec(path, *, base: Path | None = None) -> Spec:
    """Read and check a sweep spec; SpecError (one line naming the field) when it is bad.
    Workloads are built here (on the client), so a bad workload is found before any task."""
    from rtl.engines import ENGINES, get_engine
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{path}: no such spec file")
    text = p.read_text()
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML ({e})") from None
    base = base or p.resolve().parent
    unknown = sorted(set(d) - TOP_KEYS)
    if unknown:
        raise SpecError(f"{path}: unknown field {unknown[0]!r} (valid: {', '.join(sorted(TOP_KEYS))})")
    if "engine" not in d:
        raise SpecError(f"{path}: field 'engine' is missing (one of {', '.join(ENGINES)})")
    engine = d["engine"]
    if engine not in ENGINES:
        raise SpecError(f"{path}: engine {engine!r} is not one of {', '.join(ENGINES)}")
    eng = get_engine(engine)
    measure = d.get("measure", ["model"])
    measure = [measure] if isinstance(measure, str) else measure
    if not isinstance(measure, list) or not measure or any(m not in MEASURES for m in measure):
        raise SpecError(f"{path}: measure must be a list of {', '.join(MEASURES)}, not {d.get('measure')!r}")
    if "energy" in measure and not eng.has_energy:
        raise SpecError(f"{path}: measure 'energy': engine {engine} has no energy table "
                        f"(engines with one: {', '.join(n for n, e in ENGINES.items() if e.has_energy)})")
    runs_layers = eng.runs_layers
    if not runs_layers and set(measure) - {"synth"}:
        raise SpecError(f"{path}: engine {engine} runs no layers: it can only be swept with measure = [\"synth\"]")
    sim = d.get("sim", "verilator")
    if sim not in SIMS:
        raise SpecError(f"{path}: sim must be one of {', '.join(SIMS)}, not {sim!r}")
    seed = _field(f"{path}: seed", d.get("seed", 1), int, "an integer")
    if not 0 <= seed < 1 << 32:
        raise SpecError(f"{path}: seed must lie in 0..2^32-1, not {seed}")
    target = d.get("target", "ecp5")
    from flows.synth import TARGETS
    if target not in TARGETS:
        raise SpecError(f"{path}: target must be one of {', '.join(TARGETS)}, not {target!r}")
    freq = _field(f"{path}: freq_mhz", d.get("freq_mhz", 50.0), (int, float), "a number")
    place = _field(f"{path}: place", d.get("place", True), bool, "true or false")
    timeout = _field(f"{path}: timeout_s", d.get("timeout_s", 600.0), (int, float), "a number")
    if not freq > 0 or not timeout > 0:
        raise SpecError(f"{path}: freq_mhz and timeout_s must be positive")

    fields = {f.name: f for f in dataclasses.fields(eng.config_cls)}

    def check_param(where: str, name: str, value) -> str:
        if name not in fields:
            raise SpecError(f"{where}: unknown parameter {name!r} for engine {engine} "
                            f"(valid: {', '.join(sorted(fields))})")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        try:
            eng.config({name: text})
        except ValueError as e:
            if "must be" in str(e) and "parameter" in str(e):
                raise SpecError(f"{where}.{name}: {e}") from None
            # a value the type admits but the configuration refuses on its own: a point that is invalid
        return text

    fixed = d.get("params", {})
    if not isinstance(fixed, dict):
        raise SpecError(f"{path}: params must be a table of parameter = value")
    fixed = {k: check_param(f"{path}: params", k, v) for k, v in fixed.items()}
    grid = d.get("grid", {})
    if not isinstance(grid, dict):
        raise SpecError(f"{path}: grid must be a table of parameter = [values]")
    grid = {k: [check_param(f"{path}: grid", k, v) for v in _as_list(f"{path}: grid.{k}", vs)]
            for k, vs in grid.items()}
    configs = [dict(fixed, **dict(zip(grid, combo))) for combo in itertools.product(*grid.values())] if grid else []
    swept = [k for k, vs in grid.items() if len(vs) > 1]

    rnd = d.get("random")
    if rnd is not None:
        if not isinstance(rnd, dict):
            raise SpecError(f"{path}: random must be a table (samples, seed, params)")
        bad = sorted(set(rnd) - {"samples", "seed", "params"})
        if bad:
            raise SpecError(f"{path}: random: unknown field {bad[0]!r} (valid: samples, seed, params)")
        n = _field(f"{path}: random.samples", rnd.get("samples", 0), int, "a positive integer")
        if not 1 <= n <= MAX_POINTS:
            raise SpecError(f"{path}: random.samples must lie in 1..{MAX_POINTS} (no more than that many points "
                            f"in one sweep), not {n}")
        ranges = rnd.get("params", {})
        if not isinstance(ranges, dict) or not ranges:
            raise SpecError(f"{path}: random.params must name at least one parameter")
        rng = np.random.default_rng(_field(f"{path}: random.seed", rnd.get("seed", 0), int, "an integer"))
        draws = {}
        for k, r in ranges.items():
            where = f"{path}: random.params.{k}"
            if isinstance(r, dict):
                if set(r) != {"min", "max"} or not all(isinstance(r[x], int) and not isinstance(r[x], bool)
                                                        for x in r) or r["min"] > r["max"]:
                    raise SpecError(f"{where}: a range is {{ min = INT, max = INT }} with min <= max")
                draws[k] = [check_param(f"{path}: random.params", k, v)
                            for v in rng.integers(r["min"], r["max"] + 1, n)]
            else:
                choices = [check_param(f"{path}: random.params", k, v) for v in _as_list(where, r)]
                draws[k] = [choices[i] for i in rng.integers(0, len(choices), n)]
        # a sample is the fixed parameters, a random value of each grid parameter it does
        # not draw itself, and its own draws: the grid's points plus `samples` more
        for i in range(n):
            c = dict(fixed, **{k: vs[int(rng.integers(0, len(vs)))] for k, vs in grid.items() if k not in draws})
            configs.append(dict(c, **{k: v[i] for k, v in draws.items()}))
        swept += [k for k in ranges if k not in swept]
    if not configs:
        configs = [dict(fixed)]
    unique = list({json.dumps(c, sort_keys=True): c for c in configs}.values())
    if len(unique) > MAX_POINTS:
        raise SpecError(f"{path}: {len(unique)} configurations: more than {MAX_POINTS} in one sweep (split it)")

    wl = d.get("workload", [])
    if not isinstance(wl, list):
        raise SpecError(f"{path}: workload must be an array of tables ([[workload]])")
    if runs_layers and not wl:
        raise SpecError(f"{path}: no [[workload]]: name the layers to run (demo, synthetic or vectors)")
    workloads = []
    for i, w in enumerate(wl):
        workloads += _workloads(f"{path}: workload[{i}]", w, base)
    if not runs_layers:
        workloads = []
    if len(unique) * max(1, len(workloads)) > MAX_POINTS:
        raise SpecError(f"{path}: {len(unique)} configurations x {len(workloads)} workloads: more than "
                        f"{MAX_POINTS} points in one sweep (split it)")
    labels = [w.label for w in workloads]
    if len(set(labels)) != len(labels):
        raise SpecError(f"{path}: two workloads are the same ({labels})")

    rep = d.get("report", {})
    pareto = rep.get("pareto") if isinstance(rep, dict) else None
    if pareto is not None and (not isinstance(pareto, list) or len(pareto) != 2
                               or not all(isinstance(x, str) for x in pareto)):
        raise SpecError(f"{path}: report.pareto must be two column names, e.g. [\"cycles\", \"luts\"]")
    name = str(d.get("name", p.stem))
    return Spec(str(path), name, engine, tuple(measure), sim, seed, target, float(freq), float(timeout), unique,
                workloads, tuple(pareto) if pareto else None, swept, text, place)


def _workloads(where: str, w: dict, base: Path) -> list[Workload]:
    if not isinstance(w, dict):
        raise SpecError(f"{where}: must be a table")
    kinds = [k for k in ("demo", "synthetic", "vectors") if k in w]
    if len(kinds) != 1:
        raise SpecError(f"{where}: give exactly one of demo = NET, synthetic = KIND, vectors = PATH")
    kind = kinds[0]
    if kind == "demo":
        bad = sorted(set(w) - {"demo", "images", "layers"})
        if bad:
            raise SpecError(f"{where}: unknown field {bad[0]!r} (valid: demo, images, layers)")
        net = w["demo"]
        if net not in DEMO_NETS:
            raise SpecError(f"{where}.demo: must be one of {', '.join(DEMO_NETS)}, not {net!r}")
        images = _field(f"{where}.images", w.get("images", 1), int, "a positive integer")
        if not 1 <= images <= 360:
            raise SpecError(f"{where}.images: must lie in 1..360 (the digits test set), not {images}")
        from golden.nets import digits
        vecs = list(digits.layer_vectors(digits.build(net), images))
        vecs = _pick(where, vecs, w.get("layers"))
        label = f"demo-{net}" + (f"[{','.join(v.name for v in vecs)}]" if "layers" in w else "") + f"x{images}"
        return [Workload(label, {"kind": "demo", "net": net, "images": images,
                                 "layers": [v.name for v in vecs]}, vecs)]
    if kind == "vectors":
        bad = sorted(set(w) - {"vectors", "layers", "images"})
        if bad:
            raise SpecError(f"{where}: unknown field {bad[0]!r} (valid: vectors, layers, images)")
        src = Path(w["vectors"])
        src = src if src.is_absolute() else base / src
        files = sorted(src.glob("*.npz")) if src.is_dir() else [src]
        if not files or not files[0].is_file():
            raise SpecError(f"{where}.vectors: {w['vectors']}: no .npz layer vectors there")
        from golden.layer import LayerVectors
        vecs = []
        for f in files:
            try:
                vecs.append(LayerVectors.from_npz(f))
            except Exception as e:  # noqa: BLE001  (any unreadable file is the user's input)
                raise SpecError(f"{where}.vectors: {f.name} is not a layer-vector file ({type(e).__name__})") \
                    from None
        images = w.get("images")
        if images is not None:
            _field(f"{where}.images", images, int, "a positive integer")
            vecs = [v.select(0, images) for v in vecs]
        vecs = _pick(where, vecs, w.get("layers"))
        return [Workload(f"vectors-{src.name}" + (f"[{','.join(v.name for v in vecs)}]" if "layers" in w else ""),
                         {"kind": "vectors", "path": str(w["vectors"]), "layers": [v.name for v in vecs],
                          "images": int(vecs[0].images)}, vecs)]
    kind_name = w["synthetic"]
    if kind_name not in SYNTHETIC_KINDS:
        raise SpecError(f"{where}.synthetic: must be one of {', '.join(SYNTHETIC_KINDS)}, not {kind_name!r}")
    bad = sorted(set(w) - set(SYNTHETIC_FIELDS) - {"synthetic"})
    if bad:
        raise SpecError(f"{where}: unknown field {bad[0]!r} (valid: synthetic, {', '.join(SYNTHETIC_FIELDS)})")
    lists = {k: _as_list(f"{where}.{k}", w.get(k, default)) if default is not None or k in w else [None]
             for k, default in SYNTHETIC_FIELDS.items()}
    out = []
    for combo in itertools.product(*lists.values()):
        shape = dict(zip(lists, combo))
        vec = synthetic_layer(f"{where}", kind_name, **shape)
        tag = ",".join(f"{k}={v}" for k, v in shape.items()
                       if v is not None and (len(lists[k]) > 1 or k in ("in_channels", "size")))
        out.append(Workload(f"{kind_name}({tag})", {"kind": "synthetic", "layer": kind_name, **shape}, [vec]))
    return out


def _pick(where: str, vecs: list, names) -> list:
    if names is None:
        return vecs
    if not isinstance(names, list) or not names:
        raise SpecError(f"{where}.layers: must be a list of layer names")
    have = {v.name: v for v in vecs}
    missing = [n for n in names if n not in have]
    if missing:
        raise SpecError(f"{where}.layers: no layer {missing[0]!r} (have: {', '.join(have)})")
    return [have[n] for n in names]


def synthetic_layer(where: str, kind: str, *, in_channels: int, out_channels: int, size: int, kernel: int,
                    stride: int, padding, weight_density: float, activation_density: float, ternary: bool,
                    images: int, seed: int):
    """A random int8 layer with the given shape and densities (weights: exactly
    round(density * count) non-zeros; activations: each differs from the zero point with
    probability ``activation_density``), multipliers set so outputs spread over int8."""
    import torch

    from golden.conv import conv2d_int, linear_int
    from golden.layer import layer_vectors_from
    ints = {"in_channels": in_channels, "out_channels": out_channels, "size": size, "kernel": kernel,
            "stride": stride, "images": images, "seed": seed}
    for k, v in ints.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "seed" else 1):
            raise SpecError(f"{where}.{k}: must be a {'non-negative' if k == 'seed' else 'positive'} integer, "
                            f"not {v!r}")
    for k, v in (("weight_density", weight_density), ("activation_density", activation_density)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1:
            raise SpecError(f"{where}.{k}: must be a fraction in [0, 1], not {v!r}")
    if images > 360:
        raise SpecError(f"{where}.images: at most 360, not {images}")
    padding = kernel // 2 if padding is None else padding
    if not isinstance(padding, int) or padding < 0:
        raise SpecError(f"{where}.padding: must be a non-negative integer, not {padding!r}")
    if kind != "linear" and size + 2 * padding < kernel:
        raise SpecError(f"{where}: kernel {kernel} is larger than the padded image ({size} + 2 x {padding})")
    rng = np.random.default_rng(seed)
    zp = -128
    if kind == "linear":
        x_shape, w_shape = (images, in_channels), (out_channels, in_channels)
    elif kind == "depthwise":
        out_channels = in_channels
        x_shape, w_shape = (images, in_channels, size, size), (in_channels, 1, kernel, kernel)
    else:
        x_shape, w_shape = (images, in_channels, size, size), (out_channels, in_channels, kernel, kernel)
    x = np.where(rng.random(x_shape) < activation_density, rng.integers(-127, 128, x_shape), zp)
    x = np.where((x == zp) & (rng.random(x_shape) < activation_density), zp + 1, x)
    nz = int(round(weight_density * int(np.prod(w_shape))))
    w = np.zeros(int(np.prod(w_shape)), dtype=np.int64)
    pick = rng.choice(w.size, nz, replace=False)
    w[pick] = rng.choice([-1, 1], nz) if ternary else rng.choice(np.r_[-127:0, 1:128], nz)
    w = w.reshape(w_shape)
    bias = rng.integers(-512, 513, out_channels)
    X, W, B = (torch.as_tensor(a) for a in (x, w, bias))
    acc = (linear_int(X, W, B, zp) if kind == "linear" else
           conv2d_int(X, W, B, zp, stride, padding, groups=in_channels if kind == "depthwise" else 1))
    dims = (0,) if kind == "linear" else (0, 2, 3)
    spread = acc.abs().amax(dim=dims).clamp(min=1).numpy().astype(np.float64)
    return layer_vectors_from(name=f"{kind}{in_channels}x{size}", kind=kind, x=x, w=w, bias=bias,
                              input_zero_point=zp, output_zero_point=-128, real_multipliers=255.0 / (2 * spread),
                              stride=stride, padding=padding)


# ----------------------------------------------------------------------------- one point (on a worker)


def evaluate(task: dict) -> dict:
    """Measure one point; a row of figures. Raises on a failure of the flow itself (the
    executor records it); a design that computes wrong outputs is a result (passed=False)."""
    from rtl.engines import get_engine
    t_start = time.perf_counter()
    eng = get_engine(task["engine"])
    row = {"status": "ok", "error": None}
    try:
        cfg = eng.config(task["params"])
    except (ValueError, TypeError) as e:
        return {"status": "invalid", "error": f"configuration refused: {e}"}
    row.update({f"p_{k}": (v if isinstance(v, (int, float, bool, str)) else str(v))
                for k, v in dataclasses.asdict(cfg).items()})
    measure = task["measure"]
    vecs = task["vectors"]
    t = {"model_s": 0.0, "build_s": 0.0, "sim_s": 0.0, "synth_s": 0.0}
    mapped, unmapped = [], []
    for v in vecs:
        why = eng.maps(v, cfg)
        (unmapped.append(f"{v.name}: {why}") if why else mapped.append(v))
    row.update(layers=len(vecs), layers_mapped=len(mapped), unmapped="; ".join(unmapped) or None,
               images=int(vecs[0].images) if vecs else 0,
               macs=sum(v.layer.macs_per_image * v.images for v in mapped))
    if vecs:
        from flows.network import useful_macs
        row["useful_macs"] = sum(useful_macs(v) for v in mapped)
        row["weight_density"] = round(float(np.mean([v.weight_density for v in mapped])), 4) if mapped else None
    model_counters: dict = {}
    if mapped and ("model" in measure or "energy" in measure and "cosim" not in measure):
        t0 = time.perf_counter()
        for v in mapped:
            for k, val in eng.cycles(eng.plan(v, cfg)).items():
                if isinstance(val, (int, float)) and not isinstance(val, bool):
                    model_counters[k] = model_counters.get(k, 0) + val
        t["model_s"] = time.perf_counter() - t0
        row["model_cycles"] = int(model_counters.get("cycles", 0))
        row["model_counters"] = json.dumps(model_counters, sort_keys=True)
    counters: dict = {}
    run_counters: dict = {}  # the RTL's counters and cycles, the model's where the RTL keeps none
    if mapped and "cosim" in measure:
        from cosim.engines import energy_counters, run_layer
        from rtl.export import generate
        t0 = time.perf_counter()
        design = generate(task["engine"], config=cfg)
        t["build_s"] += time.perf_counter() - t0
        cycles = mism = outs = 0
        passed, reused, first = True, True, None
        model_cycles = 0
        for v in mapped:
            t0 = time.perf_counter()
            r = run_layer(design, v, sim=task["sim"], seed=task["seed"], timeout_s=task["timeout_s"])
            wall = time.perf_counter() - t0
            t["sim_s"] += r.sim_s
            t["build_s"] += max(0.0, wall - r.sim_s)
            cycles += r.cycles
            mism += r.mismatches
            outs += r.outputs
            passed &= r.passed
            reused &= r.build_reused
            model_cycles += int(r.extra.get("model_cycles", 0))
            if first is None and (r.first_mismatch or r.extra.get("error")):
                first = json.dumps({"layer": v.name, **(r.first_mismatch or {}), "error": r.extra.get("error")},
                                   default=str)
            for k, val in r.extra.get("stats", {}).items():
                counters[k] = counters.get(k, 0) + val
            for k, val in energy_counters(r).items():
                run_counters[k] = run_counters.get(k, 0) + val
        row.update(cycles=cycles, mismatches=mism, outputs=outs, passed=passed, build_reused=reused,
                   first_mismatch=first, counters=json.dumps(counters, sort_keys=True))
        row.setdefault("model_cycles", model_cycles)
        if "model_cycles" in row and row["model_cycles"]:
            row["model_error_pct"] = round(100.0 * (row["model_cycles"] - cycles) / max(1, cycles), 3)
    if "energy" in measure and mapped:
        source = run_counters if "cosim" in measure else model_counters
        e = eng.energy(source, cfg)
        row["energy_pj"] = round(float(e["total"]), 4)
        row["energy"] = json.dumps({k: round(float(x), 4) for k, x in e.items()}, sort_keys=True)
        row["energy_from"] = ("rtl counters" if counters else "model counters of the simulated batches") \
            if "cosim" in measure else "model counters"
    if "synth" in measure and task.get("synth", True):
        t0 = time.perf_counter()
        s = synth_point(task["engine"], cfg, task["target"], task["freq_mhz"], task["timeout_s"],
                        task.get("place", True))
        t["synth_s"] = time.perf_counter() - t0
        row.update({k: s.get(k) for k in ("luts", "ffs", "dsps", "carry", "multipliers", "fmax_mhz", "fits")})
        row["synth_note"] = s.get("note")
        if s.get("fmax_mhz"):
            row["clock_ns"] = round(1000.0 / s["fmax_mhz"], 3)
    cyc = row.get("cycles") or row.get("model_cycles")
    if cyc and row.get("macs"):
        row["macs_per_cycle"] = round(row["macs"] / cyc, 4)
        if row.get("fmax_mhz"):
            row["gops_at_fmax"] = round(2 * row["macs"] / cyc * row["fmax_mhz"] / 1000, 4)
    row.update({k: round(v, 4) for k, v in t.items()})
    row["task_s"] = round(time.perf_counter() - t_start, 4)
    row["versions"] = versions(task["sim"] if "cosim" in measure else None)
    return row


def synth_point(engine: str, cfg, target: str, freq_mhz: float, timeout_s: float, place: bool = True) -> dict:
    """``nnaccel synth`` of one configuration, cached by (Verilog, target, frequency, place)."""
    import tempfile

    from cosim.runner import cache_root
    from flows.outdir import write_json_atomic
    from flows.synth import synth
    from rtl.export import generate
    design = generate(engine, config=cfg)
    key = hashlib.sha256(f"{design.sha256} {target} {freq_mhz}{'' if place else ' synth-only'}".encode()
                         ).hexdigest()[:16]
    cached = cache_root() / "synth" / f"{engine}-{target}-{key}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent) as d:
        params = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in dataclasses.asdict(cfg).items()
                  if not isinstance(v, (tuple, list))}
        r = synth(engine, target=target, params=params, out_dir=Path(d), freq_mhz=freq_mhz, timeout_s=timeout_s,
                  place=place)
    write_json_atomic(cached, r)
    return r


def versions(sim: str | None) -> str:
    from importlib import metadata
    out = {"nnaccel": metadata.version("nnaccel"), "python": sys.version.split()[0]}
    if sim:
        from cosim.runner import tool_version
        out[sim] = tool_version(sim)
    return json.dumps(out, sort_keys=True)


# ----------------------------------------------------------------------------- the table


class Table:
    """``DIR/points.parquet``: one row per point, rewritten whole (atomically) after
    every finished point."""

    def __init__(self, out: Path):
        self.path = Path(out) / TABLE
        self.rows: list[dict] = read_rows(self.path) if self.path.exists() else []

    def done(self) -> set[str]:
        return {r["point"] for r in self.rows if r.get("status") in ("ok", "invalid")}

    def add(self, row: dict) -> None:
        self.rows = [r for r in self.rows if r["point"] != row["point"]] + [row]
        self.write()

    def write(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        cols: dict[str, list] = {}
        for r in self.rows:
            for k in r:
                cols.setdefault(k, [])
        for k in cols:
            vals = [r.get(k) for r in self.rows]
            kinds = {type(v) for v in vals if v is not None}
            if kinds <= {int, float} and float in kinds:
                vals = [None if v is None else float(v) for v in vals]
            elif len(kinds) > 1:
                vals = [None if v is None else str(v) for v in vals]
            cols[k] = vals
        table = pa.table(cols)
        from flows.outdir import sweep_stale
        sweep_stale(self.path)  # what a killed sweep left half-written
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def read_rows(path: Path) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:  # the bytes read once: a running sweep may replace the file between pyarrow's opens
        return pq.read_table(pa.BufferReader(Path(path).read_bytes())).to_pylist()
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: not a readable points table ({type(e).__name__}: {e})") from None


# ----------------------------------------------------------------------------- the run


class Progress:
    """One line on stderr per finished point: counts, failures and the time left."""

    def __init__(self, total: int, skipped: int, stream=sys.stderr):
        self.total, self.skipped, self.stream = total, skipped, stream
        self.done = self.failed = 0
        self.t0 = time.perf_counter()

    def update(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        el = time.perf_counter() - self.t0
        left = self.total - self.skipped - self.done
        eta = el / self.done * left
        tty = self.stream.isatty()
        if not tty and left and self.done % max(1, (self.total - self.skipped) // 10):
            return
        self.stream.write(f"{chr(13) if tty else ''}sweep: {self.done + self.skipped}/{self.total} points"
                          f"{f' ({self.skipped} from an earlier run)' if self.skipped else ''}"
                          f"{f', {self.failed} failed' if self.failed else ''}, {_clock(el)} elapsed, "
                          f"ETA {_clock(eta)} ")
        if not left or not tty:
            self.stream.write("\n")
        self.stream.flush()


def _clock(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def sweep(spec_path, out, *, workers: int | None = None, scheduler: str | None = None,
          progress: bool = True) -> dict:
    """Run a sweep (see the module docstring); returns the summary (also in summary.json)."""
    from flows.executor import Executor, check_scheduler
    from flows.outdir import check_output_dir, write_atomic
    out = check_output_dir(out)
    if scheduler:
        check_scheduler(scheduler)
    spec = load_spec(spec_path)
    write_atomic(out / "spec.toml", spec.text)
    table = Table(out)
    points = spec.points()
    done = table.done()
    # the heaviest workloads first (so no worker is left with a long point at the end),
    # and within a workload the configurations in turn (their builds then run in parallel)
    todo = sorted((p for p in points if p.key not in done), key=lambda p: -p.workload.work)
    skipped = len(points) - len(todo)
    print(f"sweep {spec.name}: {spec.engine}, {len(spec.configs)} configurations x "
          f"{max(1, len(spec.workloads))} workloads = {len(points)} points"
          + (f" ({skipped} done in an earlier run)" if skipped else "") + f"; measure {', '.join(spec.measure)}",
          flush=True)
    bar = Progress(len(points), skipped) if progress else None
    t_enter = time.perf_counter()
    preload = ("flows.sweep", "flows.network", "cosim.engines", "rtl.export")
    with Executor(workers, scheduler, preload=preload) if todo else Executor(0) as ex:
        t0 = time.perf_counter()
        startup = t0 - t_enter
        if todo:
            print(f"executor: {ex.describe()}", flush=True)
        by_key = {p.key: p for p in todo}
        busy = 0.0
        slots = {k: 1 for k, m in (("synth", "synth"), ("sim", "cosim")) if m in spec.measure}
        for o in ex.run(evaluate, [p.task() for p in todo], [p.key for p in todo], resources=slots):
            p = by_key[o.key]
            row = {"point": o.key, "engine": spec.engine, "workload": p.workload.label,
                   **{f"w_{k}": (json.dumps(v) if isinstance(v, (list, dict)) else v)
                      for k, v in p.workload.meta.items()},
                   "params": json.dumps(p.params, sort_keys=True)}
            if o.ok:
                row.update(o.value)
                busy += o.value.get("task_s") or 0.0
            else:
                row.update(status="failed", error=o.error)
            row.update(worker=o.worker, finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
            table.add(row)
            if bar:
                bar.update(row["status"] != "failed")
    wall = time.perf_counter() - t0
    workers_used = ex.workers if not scheduler else None
    return report(out, spec=spec, wall_s=wall, ran=len(todo), workers=workers_used, startup_s=startup, busy_s=busy)


# ----------------------------------------------------------------------------- the report


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))


def pareto_front(rows: list[dict], x: str, y: str) -> list[dict]:
    """The rows no other row beats on both ``x`` and ``y`` (both minimized), by ``x``."""
    pts = sorted((r for r in rows if _num(r.get(x)) and _num(r.get(y))), key=lambda r: (r[x], r[y]))
    front, best = [], math.inf
    for r in pts:
        if r[y] < best:
            front.append(r)
            best = r[y]
    return front


SUMMED_FIGURES = ("cycles", "model_cycles", "energy_pj", "macs", "useful_macs", "mismatches")
CONFIG_FIGURES = ("luts", "ffs", "dsps", "carry", "fmax_mhz", "clock_ns", "fits")


def configurations(ok: list[dict], n_workloads: int) -> list[dict]:
    """One row per configuration that finished on every workload: its parameters, the
    figures summed over the workloads (cycles, energy...) and the configuration's own
    (LUTs, Fmax...) -- the units of the Pareto front (a front across workloads would
    compare different work)."""
    groups: dict[str, list[dict]] = {}
    for r in ok:
        groups.setdefault(r["params"], []).append(r)
    out = []
    for params, rs in groups.items():
        if len(rs) < max(1, n_workloads):
            continue
        c = {k: v for k, v in rs[0].items() if k.startswith("p_")}
        ran = [r for r in rs if r.get("layers_mapped") != 0]  # a workload it maps nothing of adds nothing
        c.update(params=params, workloads=len(rs), points=[r["point"] for r in rs],
                 mapped=",".join(sorted(r["workload"] for r in ran)))
        for k in SUMMED_FIGURES:
            vals = [r.get(k) for r in ran]
            if vals and all(_num(v) for v in vals):
                c[k] = round(sum(vals), 4) if any(isinstance(v, float) for v in vals) else sum(vals)
        for k in CONFIG_FIGURES:  # measured on one of its points (synthesis: the first workload's)
            c[k] = next((r[k] for r in rs if r.get(k) is not None), None)
            if c[k] is None:
                del c[k]
        if _num(c.get("macs")) and (_num(c.get("cycles")) or _num(c.get("model_cycles"))):
            c["macs_per_cycle"] = round(c["macs"] / (c.get("cycles") or c["model_cycles"]), 4)
        out.append(c)
    return out


def objectives(configs: list[dict], swept: list[str], spec_pareto) -> tuple[str, str] | None:
    """The two columns of the Pareto front: the spec's, else cycles (RTL, else model)
    against the first cost measured (LUTs, energy, DSPs), else against the first swept
    parameter (a proxy for the hardware it adds)."""
    if spec_pareto:
        return tuple(spec_pareto)
    have = lambda c: any(_num(r.get(c)) for r in configs)  # noqa: E731
    y = "cycles" if have("cycles") else "model_cycles" if have("model_cycles") else None
    params = [k for k in swept if have(f"p_{k}")]
    if y is None:  # synthesis only: area against the clock period, else against a parameter
        if have("luts") and have("clock_ns"):
            return "luts", "clock_ns"
        return (f"p_{params[0]}", "luts") if have("luts") and params else None
    for x in ("luts", "energy_pj", "dsps"):
        if have(x):
            return x, y
    return (f"p_{params[0]}", y) if params else None


def report(out, *, spec: Spec | None = None, wall_s: float | None = None, ran: int | None = None,
           workers: int | None = None, startup_s: float | None = None, busy_s: float | None = None) -> dict:
    """Write summary.md, summary.json, pareto.png and param-*.png from DIR/points.parquet."""
    from flows.outdir import write_atomic, write_json_atomic
    out = Path(out)
    path = out / TABLE
    if not path.exists():
        raise ValueError(f"{out}: no {TABLE} (not a sweep directory)")
    rows = read_rows(path)
    if spec is None and (out / "spec.toml").exists():
        try:
            spec = load_spec(out / "spec.toml", base=Path.cwd())
        except SpecError:
            spec = None
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") == "failed"]
    invalid = [r for r in rows if r.get("status") == "invalid"]
    swept = spec.swept if spec else sorted({k for r in ok for k in json.loads(r.get("params") or "{}")})
    n_workloads = len({r.get("workload") for r in rows})
    configs = configurations(ok, n_workloads)
    obj = objectives(configs, swept, spec.pareto if spec else None)
    # the front compares configurations that ran the same work: those that map the most workloads
    widest = max((len(c["mapped"].split(",")) if c["mapped"] else 0 for c in configs), default=0)
    comparable = [c for c in configs if (len(c["mapped"].split(",")) if c["mapped"] else 0) == widest]
    mapped_sets = {c["mapped"] for c in comparable}
    if len(mapped_sets) > 1:  # as wide but different workloads: take the most common set
        common = max(mapped_sets, key=lambda m: sum(c["mapped"] == m for c in comparable))
        comparable = [c for c in comparable if c["mapped"] == common]
    front = pareto_front(comparable, *obj) if obj else []
    split = {k: round(sum(r.get(k) or 0 for r in ok), 2) for k in ("build_s", "sim_s", "model_s", "synth_s",
                                                                     "task_s")}
    summary = {"schema": "nnaccel-sweep/1", "spec": spec.path if spec else None,
               "engine": spec.engine if spec else (rows[0].get("engine") if rows else None),
               "points": len(rows), "ok": len(ok), "failed": len(failed), "invalid": len(invalid),
               "ran_now": ran, "wall_s": round(wall_s, 2) if wall_s is not None else None, "workers": workers,
               "startup_s": round(startup_s, 2) if startup_s is not None else None,
               "time_split_s": split, "pareto": {"x": obj[0], "y": obj[1]} if obj else None,
               "configurations": len(configs), "workloads": n_workloads,
               "front": [{k: r.get(k) for k in ("params", obj[0], obj[1])} for r in front] if obj else [],
               "mismatching_points": sum(1 for r in ok if r.get("passed") is False)}
    if wall_s and ran and busy_s is not None:
        # what the workers' time held beyond the tasks' own (scheduling, transfer, idle at the end)
        slots = min(workers or 1, ran)
        summary["busy_s"] = round(busy_s, 2)
        summary["overhead_per_task_s"] = round(max(0.0, wall_s * slots - busy_s) / ran, 4)
    lines = [f"# Sweep {spec.name if spec else out.name}: {summary['engine']}", "",
             f"{len(rows)} points: {len(ok)} ok, {len(failed)} failed, {len(invalid)} refused by the configuration"
             + (f"; {summary['mismatching_points']} with output mismatches" if summary["mismatching_points"] else ""),
             ""]
    if wall_s is not None:
        lines += [f"This run: {ran} points in {wall_s:.1f} s"
                  + (f" on {workers} workers" if workers else "")
                  + (f" (and {startup_s:.1f} s to start them)" if startup_s and startup_s > 0.05 else "")
                  + ". Time in the points (summed over all "
                  f"finished points): build {split['build_s']} s, simulate {split['sim_s']} s, cycle model "
                  f"{split['model_s']} s, synthesis {split['synth_s']} s, whole tasks {split['task_s']} s"
                  + (f"; idle workers, scheduling and transfer {summary['overhead_per_task_s']} s per task" if
                     "overhead_per_task_s" in summary else "") + ".", ""]
    if obj:
        x, y = obj
        cols = list(dict.fromkeys([*(f"p_{k}" for k in swept), x, y]))
        lines += [f"## Pareto front: {y} against {x} (both lower is better)", "",
                  f"Per configuration ({len(configs)} finished on all {n_workloads} workloads), figures summed "
                  f"over the workloads it maps"
                  + (f" (the front compares the {len(comparable)} that map the same workloads)"
                     if len(comparable) < len(configs) else "")
                  + f"; {len(front)} configurations on the front:", "",
                  "| " + " | ".join(c.removeprefix("p_") for c in cols) + " |",
                  "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(r.get(c)) for c in cols) + " |" for r in front]
        lines += ["", "![Pareto front](pareto.png)", ""]
        if len(configs) <= 60:
            on = {r["params"] for r in front}
            extra = [c for c in ("macs_per_cycle", "energy_pj", "luts", "fmax_mhz") if c not in cols
                     and any(_num(r.get(c)) for r in configs)]
            lines += [f"## All {len(configs)} configurations, by {y}", "",
                      "| " + " | ".join(c.removeprefix("p_") for c in cols + extra) + " | front |",
                      "|" + "---|" * (len(cols) + len(extra) + 1)]
            lines += ["| " + " | ".join(str(r.get(c)) for c in cols + extra) + f" | {'*' if r['params'] in on else ''} |"
                      for r in sorted(configs, key=lambda r: (r.get(y) is None, r.get(y) or 0))]
            lines.append("")
    if failed or invalid:
        lines += ["## Points that did not run", ""]
        lines += [f"- `{r.get('params')}` on {r.get('workload')}: {r.get('status')}: {r.get('error')}"
                  for r in failed + invalid][:50]
        lines.append("")
    plots = _plots(out, ok, configs, obj, swept, front)
    lines += [f"![{p.stem}]({p.name})" for p in plots if p.name != "pareto.png"]
    lines += ["", f"Table: `{TABLE}` ({len(rows)} rows; read it with `pyarrow.parquet.read_table`). "
              f"Rebuild this page: `nnaccel sweep --report {out}`.", ""]
    write_atomic(out / "summary.md", "\n".join(lines))
    write_json_atomic(out / "summary.json", summary)
    return summary


def _plots(out: Path, ok: list[dict], configs: list[dict], obj, swept: list[str], front: list[dict]) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from flows.outdir import sweep_stale
    made = []

    def save(fig, name):
        p = out / name
        sweep_stale(p)
        tmp = out / f".{name}.tmp{os.getpid()}"
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
        plt.close(fig)
        os.replace(tmp, p)
        made.append(p)

    if obj:
        x, y = obj
        pts = [r for r in configs if _num(r.get(x)) and _num(r.get(y))]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter([r[x] for r in pts], [r[y] for r in pts], s=14, alpha=0.6, label="configurations")
        ax.plot([r[x] for r in front], [r[y] for r in front], "k.-", lw=1, label="Pareto front")
        ax.set_xlabel(x.removeprefix("p_"))
        ax.set_ylabel(y)
        ax.legend(fontsize=7)
        ax.set_title(f"{len(pts)} configurations, {len(front)} on the front")
        save(fig, "pareto.png")
    y = obj[1] if obj else None
    for k in swept:
        col = f"p_{k}"
        pts = [r for r in ok if _num(r.get(col)) and y and _num(r.get(y))]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for w in sorted({r["workload"] for r in pts}):
            sel = sorted((r for r in pts if r["workload"] == w), key=lambda r: r[col])
            ax.plot([r[col] for r in sel], [r[y] for r in sel], "o", ms=3, alpha=0.7,
                    label=w if len(pts) < 400 else None)
        ax.set_xlabel(k)
        ax.set_ylabel(y)
        if len({r["workload"] for r in pts}) <= 8:
            ax.legend(fontsize=6)
        save(fig, f"param-{k}.png")
    return made
