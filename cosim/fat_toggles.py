"""FAT's toggle points by structure, and the figure within the range legal streams can reach.

``nnaccel cosim fat --coverage -o DIR`` reports toggle coverage over every bit of the
engine's Verilog (structurally constant bits aside, :func:`cosim.coverage.structural_constants`).
This helper reads the same run (``DIR/coverage-fat.dat`` and ``DIR/coverage-fat.v``) and

* groups the engine's toggle points by the structure that makes them (:data:`STRUCTURES`,
  matched on the signal's name and on the Amaranth source line its ``src`` attribute
  names), with covered / points per structure, summing to the run's engine figure;
* marks the points no legal command stream can cover (:func:`out_of_range`, one reason
  each, stated in ``docs/coverage.md``, "Where FAT's toggle misses are"): bits a value
  range bounds (command fields, column counts, row sums, the bit counter, the error
  adder's partial sums, the requantizer's shift masks, counters past what the harness's
  2**20 commands can count), invariants of the SACU in "fat" mode, the statics' 1->0
  (held for a run), and bits constant in the design's structure that Yosys's ``opt -fast``
  (the coverage flow's pass) leaves but ``opt -full`` folds (a mux of two constants
  that agree in a bit, an OR of such);
* and gives "toggle within the reachable range": covered / points with those left out
  of both (out-of-range points Verilator counts as toggled, at time zero, are left out
  of the covered count too, as for Phantom).

This is an analysis of FAT's default configuration (``FatConfig()``); the rules read the
configuration for their bounds, but they name FAT's signals and source lines, so after
an RTL change read the report's ``unmatched`` list (entries of :data:`SACU_LOW_SLOTS` whose
signal or driver no longer matches the Verilog) and its list of points missed within the
range before trusting the figure. Not part of the coverage flow: the flow's figures stay
Verilator's, with structural constants only.

    python -m cosim.fat_toggles DIR [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

from cosim import coverage as cv
from golden.quant import SHIFT_MIN
from rtl.fat.config import FatConfig

HARNESS_COMMANDS = 1 << 20  # cosim.testbenches.fat.DEPTH_LOG2: commands one harness run can hold

# (structure, signal-name pattern, Amaranth source-text pattern): the first that matches
# a point's signal name or the text of the Python line its src attribute names.
STRUCTURES = (
    ("32-bit counters (stat_*, n_* and their adders)", r"^(stat_|n_)", r"stats\[name\]|n_\{name\}"),
    ("error adder (invalid codes of a word)", None, r'count\("errors"'),
    ("requantizer statics (zero_point, act_min, act_max)", r"^(zero_point|act_min|act_max)",
     r'"(zero_point|act_min|act_max)": In'),
    ("requantizer (rtl/requant/requantizer.py)", None, r"REQUANT"),
    ("command port (i payload, valid, ready)", r"^i__", r"int8_engine_ports|STREAM"),
    ("readout (rd_cols, tbuf, obuf, em_*, bias add)", r"^(rd_|em_|tbuf|obuf|col_val)",
     r"rd_cols|rd_params|em_params|em_cols|em_col|em_busy|tbuf|obuf|col_val|rq\.i\."),
    ("step datapath (carry latch, sum, late_rows tables)", r"^(carry|c_out|carry_if|sum_if|w_next)",
     r"carry|c_out|o_vec|a_vec|late_rows|table\[|o_v = |a_v = |init = |\(x & \(\(y"),
    ("row registers, array ports and bypass", r"^(acc_row|op_row|op_sat|bit|w_|wq|acc_|op_|mem)",
     r"acc_row|op_row|op_sat|restarting|advancing|\bbit\b|w_addr|wq_|wq2_|w_next|w_sum|r_addr|hit_|_row_next|"
     r"bypassed|\bhit\b|rows\[name\]|nz\.|MEMORY"),
    ("SACU (word decode, lookahead, issue)", None,
     r"codes|mask|rest|first_row|code|more|slot0|lowest|live|nonzero_in|word_row|next_row|zero_op|phase|\bcur\b|"
     r"\binv\b|j_rows|bad|busy|starting|last|acc_base|op_base|Signal\.like"),
)
OTHER = "other (state machine, no src)"


def _python_line(src: str | None, root: Path) -> str:
    """The text of the first Python line a src attribute names ("rtl/fat/engine.py:81")."""
    if not src:
        return ""
    where = src.split(", ")[0]
    path, _, line = where.rpartition(":")
    if path.startswith("rtl/requant/"):
        return "REQUANT " + _read_line(root / path, line)
    if path.endswith("amaranth/lib/stream.py"):
        return "STREAM"
    if path.endswith("amaranth/lib/memory.py"):
        return "MEMORY"
    return _read_line(root / path, line)


_LINES: dict[Path, list[str]] = {}


def _read_line(path: Path, line: str) -> str:
    if path not in _LINES:
        _LINES[path] = path.read_text().splitlines() if path.exists() else []
    lines = _LINES[path]
    return lines[int(line) - 1] if line.isdigit() and 0 < int(line) <= len(lines) else ""


def structure(name: str, text: str) -> str:
    text = text.split("  # ")[0]  # the code, not its comment
    for label, name_re, text_re in STRUCTURES:
        if name_re and re.search(name_re, name):
            return label
        if text_re and re.search(text_re, text):
            return label
    return OTHER


def _counter_bounds(cfg: FatConfig) -> dict[str, int]:
    """The most a counter can count in one harness run: its largest increase from one
    command (a WEIGHTS word of W weights of acc_bits steps each, or a CLEAR / READ of
    acc_bits cycles) times the commands the harness holds."""
    W, B = cfg.word_weights, cfg.acc_bits
    per_command = {"busy": 1 + W * (B + 1), "steps": W * B, "row_reads": 2 * W * B, "row_writes": max(W * B, B),
                   "latch_ops": W * B, "adds": W, "subs": W, "zero_ops": W, "skipped_bits": W * B, "errors": W}
    return {k: HARNESS_COMMANDS * v for k, v in per_command.items()}


def out_of_range(p: dict, cfg: FatConfig) -> str | None:
    """Why no legal stream covers toggle point ``p`` (keys: module, signal, bit, dir
    ("0->1" / "1->0"), width, driver (Verilog text), text (its Python source line)), or
    None. Each reason is one rule of docs/coverage.md."""
    name, bit, width, drv, text = p["signal"], p["bit"], p["width"], p["driver"], p["text"]
    R = max(1, (cfg.rows - 1).bit_length())
    C, B, W = cfg.cols, cfg.acc_bits, cfg.word_weights
    if p["fine_constant"]:
        return "structural (opt -full)"
    # command fields: rows < 2**R (slots < rows / op_bits), READ columns <= cols, cnt <= W, 4 opcodes
    fields = {"op": (0, 3, 2), "addr": (3, 16, R), "aux": (19, 16, R), "cnt": (35, 8, W.bit_length())}
    if p["module"] == "fat" and re.fullmatch(r"i__payload(\.\w+)?", name):  # the engine's command port
        field = name.partition(".")[2]
        for f, (lo, w, used) in fields.items():
            if (field == f and bit >= used) or (not field and lo + used <= bit < lo + w):
                return "command field"
        return None
    # READ column counts (<= cols) and the emitter's column counter (< cols, + 1)
    if re.fullmatch(r"rd_cols|em_cols|em_col", name) or re.search(r"= (rd_cols|em_cols|em_col)( \+ 1'h1)? ?;", drv):
        return "column count" if bit >= C.bit_length() else None
    # row + offset sums: a legal stream's rows (operands and accumulators) lie below the
    # carry rows, so no sum reaches 2**R
    if re.search(r"slot0_v \+ j_rows|op_row \+ ~op_sat|acc_row \+ 1", text) and " + " in drv:
        return "row sum" if bit >= R else None
    # the bit counter counts to acc_bits
    if re.search(r"= \\?bit \+ 1'h1 ?;", drv):
        return "bit counter" if bit >= B.bit_length() else None
    # the error adder: a partial sum of n one-bit terms (width n + 1) is at most n
    if 'count("errors"' in text and " + " in drv and "stat_errors" not in drv:
        return "error sum" if bit >= (width - 1).bit_length() else None
    # counters: a harness run holds 2**20 commands; bit k rises at 2**k counts, falls at 2**(k+1)
    m = re.match(r"(?:stat_|n_)(\w+)$", name) or re.search(r"= stat_(\w+)(?: \+ [^;]*?)? ?;", drv)
    if m and m[1] in _counter_bounds(cfg):
        if m[1] == "zero_ops" and cfg.mode == "fat":
            return "SACU invariant"  # fat mode never issues a zero weight
        top = _counter_bounds(cfg)[m[1]]
        need = 1 << (bit + (1 if p["dir"] == "1->0" else 0))
        return "counter bound" if need > top else None
    # requantizer: right shift <= -SHIFT_MIN, so 1 << right < 2**32 and the mask < 2**31
    if text.startswith("REQUANT") or p.get("reads_mask"):
        lim = (-SHIFT_MIN).bit_length()  # bits of a right shift
        if "-p.shift" in text:
            return "requantizer shift" if bit >= lim else None
        if p.get("reads_mask"):  # { 1'h0, mask[31:1] }: mask's bit 31 lands in bit 30
            return "requantizer shift" if bit >= (1 << lim) - 2 else None
        if "<< right) - 1" in text or name == "mask":
            return "requantizer shift" if bit >= (1 << lim) - (0 if "<<" in drv else 1) else None
        if re.search(r"remainder = |threshold = ", text):
            return "requantizer shift" if bit >= (1 << lim) - 1 else None
        if re.search(r'"(zero_point|act_min|act_max)": In', text):
            return "static" if p["dir"] == "1->0" else None
        return None
    if re.fullmatch(r"zero_point|act_min|act_max", name.split("$")[0]):
        return "static" if p["dir"] == "1->0" else None
    # SACU invariants in fat mode: only +1 / -1 weights are issued (no zero op, code never
    # INVALID at an issue; phase is ParaPIM's), and a mask without its lowest weight has bit
    # 0 clear (rest, live & ~lowest), its lowest weight in slot 1 or above, and the weight
    # after that in slot 2 or above
    if cfg.mode == "fat":
        if re.fullmatch(r"zero_op|phase", name) or re.search(r"= (zero_op|phase) ?;", drv):
            return "SACU invariant"
        if re.search(r"= code == 2'h2 ?;", drv):
            return "SACU invariant"
        if re.fullmatch(r"rest|rest_next", name) or re.search(r"= rest(_next)? ?;", drv):
            return "SACU invariant" if bit == 0 else None
        if "live & ~live_lowest" in text and " & " in drv:
            return "SACU invariant" if bit == 0 else None
        if name in SACU_LOW_SLOTS:
            return "SACU invariant" if bit < SACU_LOW_SLOTS[name][1] else None
    return None


# The SACU's lookahead signals whose low slots are 0 by construction in "fat" mode, at this
# commit (Yosys's names; :func:`analyse` reports an entry whose driver no longer matches):
# {signal: (what its driver reads, bits below this slot never set)}. rest = mask without its
# lowest weight (bit 0 clear); in a step, mask's lowest weight lies above the one being
# processed (slot 1 or above) and rest's lowest above that (slot 2 or above).
SACU_LOW_SLOTS = {
    "lowest$71": ("live", 1), "lowest$72": ("live", 1),  # lowest of live & ~lowest(live)
    "lowest$108": ("rest", 1),  # lowest of rest (an issue from ISSUE)
    "lowest$115": ("rest", 2),  # lowest of rest when a step ends and the next weight issues
    "$137": ("$136", 1), "$238": ("rest", 1), "$377": ("rest", 1), "$461": ("rest", 1),  # rest[0]
    "$138": ("$137", 1), "$239": ("$238", 1), "$378": ("$377", 1), "$462": ("$461", 1),  # ~rest[0]
    "$422": ("lowest$108", 1), "$423": ("$422", 2), "$424": ("lowest$108", 2), "$425": ("$424", 2),
    "$506": ("lowest$115", 2), "$507": ("$506", 1), "$508": ("lowest$115", 2), "$509": ("$508", 2),
    "$510": ("lowest$115", 2), "$511": ("$510", 2),
}


def analyse(directory, cfg: FatConfig | None = None, root: Path | None = None, *, timeout_s: float = 900) -> dict:
    """The table of :data:`STRUCTURES` and the figure within the reachable range for the run
    in ``directory`` (see the module docstring)."""
    cfg = cfg or FatConfig()
    root = root or Path(__file__).resolve().parents[1]
    d = Path(directory)
    verilog = (d / "coverage-fat.v").read_text()
    merged = cv.read_dat(d / "coverage-fat.dat")
    fast, full = _constants(verilog, timeout_s)
    src = cv.SourceMap.of(verilog)
    engine_file = "coverage-fat.v"
    engine_file = next((os.path.basename(p.file) for p in cv.points(merged)
                        if os.path.basename(p.file) in ("fat.v", engine_file)), "fat.v")
    rows = defaultdict(lambda: {"covered": 0, "points": 0, "out": 0, "out_covered": 0, "reasons": defaultdict(int)})
    reasons = defaultdict(lambda: [0, 0])
    total = [0, 0]
    in_range = [0, 0]
    missed_in_range = defaultdict(set)
    for p in cv.points(merged):
        if p.kind != "toggle" or os.path.basename(p.file) != engine_file or cv._artifact(p, src):
            continue
        m = cv._TOGGLE.match(p.comment)
        if not m:
            continue
        name = m["signal"].lstrip("\\")
        bit = int(m["bit"]) if m["bit"] is not None else 0
        if bit in fast.get((p.module, name), ()):
            continue  # the flow's structural constants: already out of its figures
        s = src.signal_src(p.module, name)
        text = _python_line(s and s.replace("\\", "/"), root)
        drv_line = src.driver.get((p.module, name))
        mask_line = src.text(src.driver.get((p.module, "mask"), 0))  # requantizer: mask = (1 << right) - 1
        mask_of = re.search(r"= \\?(\S+) \[\d+:0\];", mask_line)
        reads_mask = bool(mask_of and drv_line and f"{mask_of[1]} [31:1]" in src.text(drv_line))
        info = {"reads_mask": reads_mask, "module": p.module, "signal": name, "bit": bit, "dir": m["dir"],
                "width": src.width.get((p.module, name), 1), "driver": src.text(drv_line) if drv_line else "",
                "text": text.strip(), "fine_constant": bit in full.get((p.module, name), ())}
        row = rows[structure(name, text)]
        hit = p.count > 0
        row["points"] += 1
        row["covered"] += hit
        total[0] += hit
        total[1] += 1
        why = out_of_range(info, cfg)
        if why:
            row["out"] += 1
            row["out_covered"] += hit
            row["reasons"][why] += 1
            reasons[why][0] += hit
            reasons[why][1] += 1
        else:
            in_range[0] += hit
            in_range[1] += 1
            if not hit:
                missed_in_range[(p.module, name, structure(name, text))].add(f"{bit}:{m['dir']}")
    unmatched = [name for name, (reads, _) in SACU_LOW_SLOTS.items()
                 if ("fat", name) not in src.width
                 or (name.startswith("$") and reads not in src.text(src.driver.get(("fat", name), 0)))]
    counters = rows[STRUCTURES[0][0]]
    return {
        "unmatched": unmatched,
        "in_range_counters_aside": {"covered": in_range[0] - (counters["covered"] - counters["out_covered"]),
                                    "total": in_range[1] - (counters["points"] - counters["out"])},
        "engine_toggle": {"covered": total[0], "total": total[1]},
        "in_range_toggle": {"covered": in_range[0], "total": in_range[1]},
        "structures": {k: {**v, "reasons": dict(v["reasons"])} for k, v in rows.items()},
        "reasons": {k: {"covered": v[0], "points": v[1]} for k, v in reasons.items()},
        "missed_in_range": [{"module": k[0], "signal": k[1], "structure": k[2], "points": sorted(v)}
                            for k, v in sorted(missed_in_range.items(), key=lambda kv: (kv[0][2], kv[0][1]))],
    }


def _constants(verilog: str, timeout_s: float) -> tuple[dict, dict]:
    """Yosys's constant bits of every kept wire after ``opt -fast`` (the coverage flow's
    structural constants) and after ``opt -full`` as well (fine-grained: a mux bit whose
    two inputs are the same constant)."""
    from cosim.mutate import run_yosys
    script = ("read_verilog design.v\nproc\nsetattr -set keep 1 w:*\nopt -fast\nwrite_json fast.json\n"
              "opt -full\nwrite_json full.json\n")
    _, out = run_yosys(script, {"design.v": verilog}, timeout_s=timeout_s, outputs=("fast.json", "full.json"))
    found = []
    for f in ("fast.json", "full.json"):
        bits: dict[tuple[str, str], set[int]] = {}
        for module, mod in json.loads(out[f])["modules"].items():
            for name, net in mod["netnames"].items():
                offset = int(net.get("offset", 0))
                b = {offset + i for i, x in enumerate(net["bits"]) if x in ("0", "1")}
                if b:
                    bits[(module.lstrip("\\"), name.lstrip("\\"))] = b
        found.append(bits)
    return found[0], found[1]


def report(doc: dict) -> str:
    def pct(c, t):
        return f"{100 * c / t:.1f}% ({c:,}/{t:,})" if t else "-"
    out = ["| structure | covered / points | out of range (covered) | in range: covered / points |",
           "|---|---|---|---|"]
    for k, v in sorted(doc["structures"].items(), key=lambda kv: -kv[1]["points"]):
        out.append(f"| {k} | {v['covered']:,} / {v['points']:,} | {v['out']:,} ({v['out_covered']:,}) | "
                   f"{v['covered'] - v['out_covered']:,} / {v['points'] - v['out']:,} |")
    e, r, a = doc["engine_toggle"], doc["in_range_toggle"], doc["in_range_counters_aside"]
    out += ["", f"engine toggle {pct(e['covered'], e['total'])}; within the reachable range "
                f"{pct(r['covered'], r['total'])}; the same, counters aside {pct(a['covered'], a['total'])}",
            "", "out of range, by rule:"]
    out += [f"  {k}: {v['points']:,} points ({v['covered']:,} counted toggled by Verilator)"
            for k, v in sorted(doc["reasons"].items(), key=lambda kv: -kv[1]["points"])]
    if doc["unmatched"]:
        out += ["", f"SACU_LOW_SLOTS entries that match no signal of this Verilog: {', '.join(doc['unmatched'])}"]
    out += ["", "missed within the range:"]
    out += [f"  [{m['structure']}] {m['module']}.{m['signal']}: {', '.join(m['points'])}"
            for m in doc["missed_in_range"]]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cosim.fat_toggles", description=__doc__.split("\n")[0])
    ap.add_argument("directory", help="the -o DIR of nnaccel cosim fat --coverage")
    ap.add_argument("--json", help="also write the analysis as JSON")
    a = ap.parse_args(argv)
    doc = analyse(a.directory)
    print(report(doc))
    if a.json:
        Path(a.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
