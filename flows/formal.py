"""`nnaccel formal ENGINE [-o DIR] [--timeout S]`: the engines' formal properties.

Every engine with an ``rtl/<engine>/formal.py`` lists its properties there
(``PROPERTIES``: name, summary, wrapper, method prove/bmc, depth, configuration);
``cosim.formal.check`` runs each with SymbiYosys. ENGINE may be ``all``. Writes
``DIR/formal.json`` (whole or not at all) with one record per property: engine,
configuration, result, method, depth, time, detail; the SymbiYosys work folders
stay in ``DIR/work/<property>/``.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

from cosim.formal import check, tool_dir
from flows.outdir import Progress, check_output_dir, write_json_atomic
from rtl.engines import ENGINES


def engines_with_properties() -> list[str]:
    """The engines (table order) that have an ``rtl/<engine>/formal.py``."""
    return [name for name, e in ENGINES.items() if e.room("formal") is not None]


def properties(engine: str) -> list:
    """The properties of ``engine`` (``all``: of every engine); ValueError, one line, for
    an unknown engine or one without properties."""
    names = engines_with_properties()
    if engine == "all":
        chosen = names
    elif engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (valid: all, {', '.join(ENGINES)})")
    elif engine not in names:
        raise ValueError(f"engine {engine!r} has no formal properties (engines with some: {', '.join(names)})")
    else:
        chosen = [engine]
    return [p for name in chosen for p in ENGINES[name].room("formal").PROPERTIES]


def formal(engine: str, out_dir: Path, *, timeout_s: float = 300.0, only: list[str] | None = None,
           progress: bool = True) -> dict:
    """Run the properties of ``engine``, write ``out_dir/formal.json``, return its content."""
    props = properties(engine)
    if only:
        unknown = [n for n in only if n not in {p.name for p in props}]
        if unknown:
            raise ValueError(f"unknown property {unknown[0]!r} for {engine} (valid: {', '.join(p.name for p in props)})")
        props = [p for p in props if p.name in only]
    check_output_dir(out_dir, "-o")
    tool_dir()  # a missing tool: one error before any work
    work = Path(out_dir) / "work"
    bar = Progress(len(props)) if progress else None
    results = []
    t0 = time.perf_counter()
    for p in props:
        if bar:
            bar.start(p.name)
        r = check(p, work, timeout_s=timeout_s)
        if bar:
            bar.done(f"{r.result} ({r.method} {r.depth})")
        results.append(r.as_dict())
    doc = {
        "engine": engine,
        "tool": "SymbiYosys (yowasp-sby) + smtbmc + yices",
        "timeout_s": timeout_s,
        "wall_s": round(time.perf_counter() - t0, 2),
        "host": platform.node(),
        "passed": all(r["result"] == "PASS" for r in results),
        "properties": results,
    }
    write_json_atomic(Path(out_dir) / "formal.json", doc)
    return doc


def summary(doc: dict) -> list[str]:
    """One line per property: result, name, method and depth, time."""
    lines = []
    for r in doc["properties"]:
        how = f"k-induction k={r['depth']}" if r["method"] == "prove" else f"bmc depth {r['depth']}"
        lines.append(f"{r['result']:<7} {r['name']:<34} {how:<20} {r['time_s']:>7.1f} s")
    return lines


def failures(doc: dict) -> list[str]:
    """One line per property that did not pass, naming it."""
    return [f"formal: {r['name']} {r['result']}: {r['detail']}" for r in doc["properties"] if r["result"] != "PASS"]
