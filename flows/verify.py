"""`nnaccel verify`: whole networks through the RTL, an engine per layer, chained, bit-exact.

For the built-in digits nets (every integer variant) the flow builds (or loads) each
net, turns it into network steps (:mod:`flows.network`: engine layers and host
operations), runs the test images through the hardware path layer by layer -- each
layer fed with what the previous layer's RTL produced -- and compares the final int8
outputs with the golden integer graph image by image. It writes ``report.md``,
``results.json`` (schema in ``docs/verify-results.md``), plots and every layer's
integer vectors into the output directory, which appears whole or not at all.
"""

from __future__ import annotations

import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from cosim.runner import CosimError, cache_root, tool_version
from flows.network import designs_for, run_network
from flows.outdir import Progress, atomic_dir, check_output_dir
from golden.graph import run as run_graph

NETS = ("digits",)
SCHEMA = "nnaccel-verify/2"


def _load_net(net: str):
    if net == "digits":
        from golden.nets import digits
        return digits
    raise ValueError(f"unknown net {net!r} (valid: {', '.join(NETS)})")


SEED_MAX = 2**32 - 1
SOURCES = {"shipped": "shipped weights", "cache": "trained on this machine, from the cache"}


def verify(*, net: str = "digits", variants=None, sim: str = "verilator", out_dir: Path = Path("out/verify"),
           seed: int = 0, n_images: int = 32, engine: str = "auto", retrain: bool = False,
           verilog: dict[str, str] | None = None, workers: int = 0, scheduler: str | None = None,
           objective: str = "cycles") -> int:
    """``retrain``: train the nets from ``seed`` on this machine (cached) instead of loading
    the shipped weights; the accuracies then depend on the machine's CPU (see golden.nets.digits)."""
    t_start = time.perf_counter()
    out_dir = check_output_dir(out_dir, replace=True)
    module = _load_net(net)
    variants = list(dict.fromkeys(variants or module.VARIANTS))
    if not 1 <= n_images <= module.TEST_IMAGES:
        raise ValueError(f"--images must be between 1 and {module.TEST_IMAGES} (the {net} test images), "
                         f"not {n_images}")
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"--seed must be an integer in 0..{SEED_MAX}, not {seed}")
    designs = designs_for(engine)
    verilog = given_verilog(verilog, designs)

    nets = {}
    prog = Progress(len(variants) + ("float" not in variants))
    for v in list(variants) + ([] if "float" in variants else ["float"]):  # the source model, for its accuracy
        prog.start(f"{net} {v}: {'train' if retrain else 'load'}")
        nets[v] = module.build(v, seed=seed, cache_dir=cache_root() / "nets", retrain=retrain)
        how = SOURCES.get(nets[v].source, f"trained in {nets[v].train_seconds:.1f} s")
        prog.done(f"accuracy {nets[v].accuracy:.2f}% ({how})")

    jobs = []
    for v in variants:
        qn = nets[v]
        if not qn.layers:
            continue
        x_q, labels = qn.test_inputs(n_images)
        jobs.append({"graph": module.to_graph(qn), "x": x_q.numpy(), "labels": labels.numpy(), "label": v,
                     "source_accuracy": _float_accuracy(nets["float"], n_images)})
    runs = check_graphs(jobs, designs, engine=engine, sim=sim, seed=(seed + 1) % (SEED_MAX + 1), verilog=verilog,
                        workers=workers, scheduler=scheduler, objective=objective)
    results = _results(net, engine, sim, seed, n_images, designs, runs, t_start, objective=objective, variants=[
        {"variant": v, "accuracy": nets[v].accuracy, "weight_sparsity": nets[v].sparsity,
         "integer_layers": len(nets[v].layers), "train_seconds": nets[v].train_seconds, "weights": nets[v].source}
        for v in variants])
    return _finish(results, out_dir, lambda d: [module.export_vectors(nets[v], d, n_images) for v in variants])


def verify_model(model: str, data: str, *, sim: str = "verilator", out_dir: Path = Path("out/verify"),
                 seed: int = 0, n_images: int = 32, engine: str = "auto", verilog: dict[str, str] | None = None,
                 workers: int = 0, scheduler: str | None = None, objective: str = "cycles") -> int:
    """A user's model (``nnaccel import``'s formats) end to end on the first ``n_images`` of
    ``data`` (DATA.npz: ``x``, optionally ``y``)."""
    from flows.model_import import load_data
    from golden.importers import import_model, run_source

    t_start = time.perf_counter()
    out_dir = check_output_dir(out_dir, replace=True)
    if n_images < 1:
        raise ValueError(f"--images must be >= 1, not {n_images}")
    x, y = load_data(data)
    graph = import_model(model, x)
    x, y = x[:n_images], None if y is None else np.asarray(y)[:n_images]
    designs = designs_for(engine)
    verilog = given_verilog(verilog, designs)
    source = None
    if y is not None:
        src = run_source(graph, x, exposed=False)[graph.output]
        source = 100.0 * float((src.reshape(len(src), -1).argmax(1) == y).mean())
    x_q = graph.quantize_input(x)
    runs = check_graphs([{"graph": graph, "x": x_q, "labels": y, "label": graph.name, "source_accuracy": source}],
                        designs, engine=engine, sim=sim, seed=(seed + 1) % (SEED_MAX + 1), verilog=verilog,
                        workers=workers, scheduler=scheduler, objective=objective)
    results = _results(str(model), engine, sim, seed, len(x), designs, runs, t_start, objective=objective,
                       variants=[
        {"variant": graph.name, "accuracy": None, "weight_sparsity": _sparsity(graph),
         "integer_layers": len(graph.engine_nodes), "train_seconds": 0.0, "weights": str(model)}])
    results["notes"] = list(graph.notes)

    def vectors(d):
        from flows.model_import import _file_name
        d.mkdir(parents=True, exist_ok=True)
        for k, vec in enumerate(graph.layer_vectors(x_q)):
            vec.to_npz(d / _file_name(k, vec.name))  # the layout of `nnaccel import`
    return _finish(results, out_dir, vectors)


def _sparsity(graph) -> float:
    ws = [n.w for n in graph.engine_nodes]
    return float(sum((w == 0).sum() for w in ws) / max(1, sum(w.size for w in ws)))


def _finish(results: dict, out_dir: Path, write_vectors) -> int:
    """Write the output directory (whole or not at all) and print the verdict."""
    with atomic_dir(out_dir) as tmp:
        write_vectors(tmp / "vectors")  # each layer's integer test vectors, for other tools and engines
        (tmp / "results.json").write_text(json.dumps(results, indent=2, default=_json) + "\n")
        plots = write_plots(results, tmp)
        (tmp / "report.md").write_text(report_markdown(results, plots))
    t = results["totals"]
    word = "PASS" if results["passed"] else "FAIL"
    mix = ", ".join(f"{k} {v['layers']}" for k, v in t["per_engine"].items())
    print(f"{word}: {results['net']} ({', '.join(r['variant'] for r in results['runs'])}) end to end on "
          f"{results['simulator']}, engine {results['engine']}: {t['layers']} layers ({mix}), {t['images']} images, "
          f"{t['cycles']} cycles, {t['mismatches']} mismatches"
          f"{'' if results['passed'] else ', diverged at ' + _where(results)} ({results['wall_s']:.1f} s)")
    print(f"report: {out_dir / 'report.md'}")
    return 0 if results["passed"] else 1


def given_verilog(files: dict[str, str] | None, designs: dict) -> dict[str, str]:
    """``{label: path}`` from ``--verilog LABEL=FILE`` as ``{label: Verilog text}``, each file
    checked to define the design's top module."""
    from flows.orchestrate import read_verilog
    out = {}
    for label, path in (files or {}).items():
        if label not in designs:
            raise ValueError(f"--verilog {label}={path}: no design {label!r} in this run (valid: {', '.join(designs)})")
        out[label] = read_verilog(path, designs[label].top)
    return out


def check_graph(graph, x, labels, designs, *, engine: str, sim: str, seed: int, label: str,
                source_accuracy: float | None = None, verilog: dict | None = None, objective: str = "cycles") -> dict:
    """``graph`` on int8 inputs ``x`` through the hardware path (:func:`flows.network.run_network`),
    its final outputs compared with the golden integer graph's image by image; accuracies
    on ``labels`` (None: no accuracy claim)."""
    prog = Progress(len(graph.engine_nodes))
    print(f"{label}: {len(x)} images through {engine} on {sim}", flush=True)
    res = run_network(graph, x, designs, engine=engine, objective=objective, sim=sim, seed=seed, progress=prog,
                      verilog=verilog)
    return _entry(graph, x, labels, res, label, source_accuracy)


def check_graphs(jobs: list[dict], designs, *, engine: str, sim: str, seed: int, verilog: dict | None = None,
                 workers: int = 0, scheduler: str | None = None, objective: str = "cycles") -> list[dict]:
    """:func:`check_graph` for each job (``graph``, ``x``, ``labels``, ``label``,
    ``source_accuracy``): in this process one after another (``workers=0``, no
    scheduler), or on the executor (:mod:`flows.executor`): every job's images split into
    one contiguous batch per worker, every batch of every job a task, the engines chosen
    first on the whole input as a serial run chooses them (:func:`flows.network.choose_all`),
    the batches' results merged per job (:func:`flows.network.merge_runs`). The outputs,
    the checks and the choices are those of a serial run; the cycles are the batches'
    sum (each batch's simulation fills and drains its pipeline once)."""
    if not workers and not scheduler:
        return [check_graph(j["graph"], j["x"], j["labels"], designs, engine=engine, sim=sim, seed=seed,
                            label=j["label"], source_accuracy=j["source_accuracy"], verilog=verilog,
                            objective=objective) for j in jobs]
    from flows.executor import Executor
    from flows.network import batch_task, choose_all, merge_runs, split
    with Executor(workers, scheduler, preload=("flows.network", "cosim.engines")) as ex:
        n = workers if not scheduler else len(ex.client.scheduler_info(n_workers=-1)["workers"])
        print(f"executor: {ex.describe()}", flush=True)
        tasks, keys = [], []
        for i, j in enumerate(jobs):
            choices = choose_all(j["graph"], j["x"], designs, engine, objective)
            j["ranges"] = split(len(j["x"]), max(1, n))
            print(f"{j['label']}: {len(j['x'])} images through {engine} on {sim}, in {len(j['ranges'])} batches",
                  flush=True)
            for a, b in j["ranges"]:
                tasks.append({"graph": j["graph"], "x": j["x"][a:b], "designs": designs, "engine": engine,
                              "sim": sim, "seed": seed, "timeout_s": 300, "verilog": verilog, "choices": choices})
                keys.append(f"verify-{i}-{a}-{b}-{time.time_ns()}")
        parts = {}
        for o in ex.run(batch_task, tasks, keys):
            _, i, a, b, _ = o.key.split("-")
            if not o.ok:
                raise CosimError(f"{jobs[int(i)]['label']}, images {a}..{int(b) - 1}: {o.error}")
            parts[(int(i), int(a))] = o.value
            print(f"[{len(parts)}/{len(tasks)}] {jobs[int(i)]['label']} images {a}..{int(b) - 1}: "
                  f"{'PASS' if o.value['passed'] else 'FAIL'} on {o.worker} ({o.wall_s:.1f} s from the start)",
                  file=sys.stderr, flush=True)
        where = ex.describe()
    entries = []
    for i, j in enumerate(jobs):
        e = _entry(j["graph"], j["x"], j["labels"], merge_runs([parts[(i, a)] for a, _ in j["ranges"]]),
                   j["label"], j["source_accuracy"])
        e["batches"] = [list(r) for r in j["ranges"]]
        e["executor"] = where
        entries.append(e)
    return entries


def _entry(graph, x, labels, res: dict, label: str, source_accuracy) -> dict:
    """A run's entry: ``res`` (:func:`flows.network.run_network`) with its final outputs
    compared with the golden integer graph's image by image, and the accuracies."""
    golden = run_graph(graph, x)
    entry = {"variant": label, "images": int(len(x)), **res}
    out = res["output"]
    acc = (lambda y: None if labels is None else 100.0 * float((y.reshape(len(y), -1).argmax(1) == labels).mean()))
    if out is not None:
        same = (out == golden).reshape(len(out), -1).all(axis=1)
        entry.update(images_equal=int(same.sum()), first_image_differing=None if same.all() else int(np.argmin(same)),
                     hardware_accuracy=acc(out), passed=bool(res["passed"] and same.all()))
    else:
        entry.update(images_equal=0, first_image_differing=None, hardware_accuracy=None, passed=False)
    entry.update(golden_accuracy=acc(golden), source_accuracy=source_accuracy, output=None)
    return entry


def _float_accuracy(float_net, n: int) -> float:
    import torch
    from golden.nets.digits import load_data
    _, _, x, y = load_data(float_net.seed)
    with torch.no_grad():
        pred = float_net.model(x[:n]).argmax(1)
    return 100.0 * float((pred == y[:n]).double().mean())


def _json(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _where(results) -> str:
    d = next((r["diverged"] for r in results["runs"] if r["diverged"]), None)
    return f"{d['layer']} on {d['engine']}" if d else "the final comparison"


def _results(net, engine, sim, seed, n_images, designs, runs, t_start, *, variants: list[dict],
             objective: str = "cycles") -> dict:
    layers = [l for r in runs for l in r["layers"] if l["engine"] != "host"]
    per_engine = {}
    for l in layers:
        e = per_engine.setdefault(l["engine"], {"layers": 0, "cycles": 0, "model_cycles": 0, "macs": 0,
                                               "useful_macs": 0, "energy_pj": 0.0})
        e["layers"] += 1
        for k in ("cycles", "model_cycles", "macs", "useful_macs"):
            e[k] += l.get(k, 0)
        if l.get("energy"):
            e["energy_pj"] += float(l["energy"].get("total", 0.0))
    host = [l for r in runs for l in r["layers"] if l["engine"] == "host"]
    return {
        "schema": SCHEMA, "passed": bool(runs) and all(r["passed"] for r in runs),
        "net": net, "engine": engine, "objective": objective, "simulator": sim, "seed": seed, "images": n_images,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tools": {"python": platform.python_version(), "simulator": tool_version(sim)},
        "designs": {label: {"engine": d.engine, "config": d.meta()["params"]} for label, d in designs.items()},
        "variants": variants,
        "runs": runs,
        "totals": {"layers": len(layers), "host_steps": len(host), "images": sum(r["images"] for r in runs),
                   "cycles": sum(l.get("cycles", 0) for l in layers),
                   "model_cycles": sum(l.get("model_cycles", 0) for l in layers),
                   "mismatches": sum(l.get("mismatches", 0) for l in layers),
                   "host_ops": sum(l.get("host_ops", 0) for r in runs for l in r["layers"]),
                   "per_engine": per_engine},
        "wall_s": round(time.perf_counter() - t_start, 2),
    }


COLORS = {"fat": "#cc4125", "phantom": "#4a7ab5", "phantom-dense": "#9fc5e8", "winograd": "#6aa84f",
          "phantom2d": "#674ea7", "requant": "#e69138", "host": "#999999"}


def write_plots(results: dict, directory: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    layers = [(r["variant"], l) for r in results["runs"] for l in r["layers"] if l["engine"] != "host"]
    if not layers:
        return names
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(layers)), 3.6))
    for i, (v, l) in enumerate(layers):
        ax.bar(i, l.get("cycles", 0), color=COLORS.get(l["engine"], "#333333"))
    ax.set_xticks(range(len(layers)), [f"{v}\n{l['layer']}" for v, l in layers], fontsize=7)
    ax.set_ylabel("RTL cycles")
    ax.set_yscale("log")
    used = sorted({l["engine"] for _, l in layers})
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=COLORS.get(e, "#333333")) for e in used], labels=used,
              fontsize=7)
    ax.set_title(f"{results['net']}: cycles per layer, engine {results['engine']}")
    fig.tight_layout()
    fig.savefig(directory / "layers.png", dpi=120)
    plt.close(fig)
    names.append("layers.png")

    per = results["totals"]["per_engine"]
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2))
    labels = list(per)
    for ax, key, title in zip(axes, ("layers", "cycles"), ("layers per engine", "cycles per engine")):
        ax.bar(labels, [per[k][key] for k in labels], color=[COLORS.get(k, "#333333") for k in labels])
        ax.set_title(title)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(directory / "engines.png", dpi=120)
    plt.close(fig)
    names.append("engines.png")
    return names


def report_markdown(r: dict, plots: list[str]) -> str:
    t = r["totals"]
    lines = [
        f"# nnaccel verify: {'PASS' if r['passed'] else 'FAIL'}",
        "",
        f"Net `{r['net']}`, engine `{r['engine']}`"
        + (f" (the models decide by {r.get('objective', 'cycles')})" if r["engine"] == "auto" else "")
        + f", simulator {r['tools']['simulator']}, training seed {r['seed']}, "
        f"{r['images']} test images, {r['date']}. Wall time {r['wall_s']:.1f} s"
        + (f", image batches {r['runs'][0]['batches']} of each run on the executor ({r['runs'][0]['executor']}): "
           "cycles are the batches' sum, each batch filling and draining the pipelines once"
           if r["runs"] and r["runs"][0].get("executor") else "") + ".",
        "",
        ("Weights: the shipped ones (`golden/nets/weights`), so the accuracies are the same on every machine."
         if all(v.get("weights") == "shipped" for v in r["variants"]) else
         "Weights: trained from the seed on this machine (`--retrain` or a seed without shipped weights); "
         "float training follows the CPU's instruction set, so the accuracies can differ on another machine."),
        "",
        "Every engine layer is fed with the int8 tensor the previous layer's RTL produced (after host "
        "operations); its outputs are compared exactly with the golden model's for that input, and the final "
        "outputs with the golden integer graph's, image by image.",
        "",
        f"{t['layers']} engine layers and {t['host_steps']} host steps, {t['cycles']:,} RTL cycles "
        f"(models: {t['model_cycles']:,}), **{t['mismatches']} mismatches**.",
        "",
        "## End to end",
        "",
        "| variant | images | final outputs equal to golden | hardware accuracy | golden integer accuracy "
        "| source model accuracy | result |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for run in r["runs"]:
        pct = lambda a: "—" if a is None else f"{a:.2f}%"  # noqa: E731
        lines.append(f"| {run['variant']} | {run['images']} | {run['images_equal']} / {run['images']} "
                     f"| {pct(run['hardware_accuracy'])} | {pct(run['golden_accuracy'])} "
                     f"| {pct(run['source_accuracy'])} | {'PASS' if run['passed'] else 'FAIL'} |")
        if run["diverged"]:
            d = run["diverged"]
            lines.append(f"|  | diverged at layer {d['layer']} ({d['engine']}): output {d.get('index')}, inputs "
                         f"{d.get('inputs')}, expected {d.get('expected')}, got {d.get('got')} "
                         f"{d.get('error') or ''} | | | | | |")
    lines += ["", "## Layers", "",
              "| variant | layer | engine | why | in → out | MACs | useful MACs | RTL cycles | model cycles "
              "| model − RTL | MACs/cycle | energy | result |",
              "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for run in r["runs"]:
        for l in run["layers"]:
            shape = f"{'x'.join(map(str, l['input_shape']))} → {'x'.join(map(str, l['output_shape']))}"
            if l["engine"] == "host":
                lines.append(f"| {run['variant']} | {l['layer']} | host | {l['why']} | {shape} | | | | | | | "
                             f"| {l.get('host_ops', 0)} ops |")
                continue
            cyc, mod = l.get("cycles", 0), l.get("model_cycles", 0)
            diff = f"{100 * (mod - cyc) / cyc:+.2f}%" if cyc else ""
            mpc = f"{l['macs'] / cyc:.2f}" if cyc else ""
            energy = f"{l['energy']['total'] / 1000:,.1f} nJ" if l.get("energy") and "total" in l["energy"] else ""
            lines.append(f"| {run['variant']} | {l['layer']} | {l['engine']} | {l['why']} | {shape} | {l['macs']:,} "
                         f"| {l['useful_macs']:,} | {cyc:,} | {mod:,} | {diff} | {mpc} | {energy} | {l['status']} |")
    lines += ["", "## Per engine", "",
              "| engine | layers | RTL cycles | model cycles | MACs | useful MACs | energy (from the RTL's counters) |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for k, e in t["per_engine"].items():
        lines.append(f"| {k} | {e['layers']} | {e['cycles']:,} | {e['model_cycles']:,} | {e['macs']:,} "
                     f"| {e['useful_macs']:,} | {e.get('energy_pj', 0) / 1000:,.1f} nJ |")
    lines += ["", "Energy: each engine's own table (`rtl/<engine>/energy.py`: FAT at sense-amplifier level, "
              "Phantom and Winograd from Horowitz's 45 nm operation energies, `rtl/common/energy.py`), the "
              "requantizer left out of all of them; the `why` column gives each candidate's model figure "
              "where the models changed the rule's pick."]
    lines += ["", "Configurations: " + "; ".join(f"`{k}` = {d['engine']} {d['config']}"
                                                 for k, d in r["designs"].items()), ""]
    lines += [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)
