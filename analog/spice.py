"""ngspice netlists generated from :class:`analog.circuit.Circuit`, run in batch mode, raw output parsed.

* :func:`mac_netlist` -- one transient netlist holding many independent bit-line
  columns (one per (word-line level, b) point), so all 256 (a, b) pairs run in one
  ngspice call. Each column has its own supplies, so the energy of each operation
  comes from its own supply currents.
* :func:`iv_netlist` -- DC sweep of one access + pull-down stack (the discharge path)
  over word-line and bit-line voltage: the data the numerical model is fitted to.
* :func:`run` -- ``ngspice -b`` in a work directory, binary raw file read back with
  :func:`read_raw`. A missing ngspice raises :class:`NgspiceMissing`; a failed or
  non-converging run raises :class:`NgspiceError` naming the netlist it kept.

The device card is ``analog/models/ptm65nm_bulk.pm`` (BSIM4, level 54); see
``analog/models/README.md`` for its provenance.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analog.circuit import B_BITS, Circuit
from golden.errors import CosimError, ToolMissing

MODEL_CARD = Path(__file__).resolve().parent / "models" / "ptm65nm_bulk.pm"


class NgspiceMissing(ToolMissing):
    pass


class NgspiceError(CosimError):
    pass


def _f(x: float) -> str:
    return f"{x:.6g}"


def _mos(name, d, g, s, b, kind, w, l, ad=None, pd=None, m=1) -> str:
    geo = f" ad={_f(ad)} pd={_f(pd)} as={_f(ad)} ps={_f(pd)}" if ad is not None else ""
    mult = f" m={m}" if m != 1 else ""
    return f"{name} {d} {g} {s} {b} {kind} w={_f(w)} l={_f(l)}{geo}{mult}"


def _header(c: Circuit, title: str) -> list[str]:
    return [f"* {title}", f'.include "{MODEL_CARD}"', f".temp {_f(c.temp_c)}",
            ".options noacct nopage"]


def _subckts(c: Circuit) -> list[str]:
    ad_a, pd_a = c.drain_geometry(c.w_access)
    ad_pd, pd_pd = c.drain_geometry(c.w_pulldown)
    ad_pu, pd_pu = c.drain_geometry(c.w_pullup)
    ad_pc, pd_pc = c.drain_geometry(c.w_precharge)
    return [
        "* 6T cell: nodes bl blb wl vdd; data node q (BL side), qb (BLB side)",
        "* dva / dvp: threshold shifts of the BLB-side access and pull-down (Monte Carlo)",
        ".subckt cell6t bl blb wl vdd dva=0 dvp=0",
        _mos("mal", "bl", "wl", "q", "0", "nmos", c.w_access, c.l, ad_a, pd_a),
        _mos("mar", "blb", "wl", "qb", "0", "nmos", c.w_access, c.l, ad_a, pd_a) + " delvto={dva}",
        _mos("mdl", "q", "qb", "0", "0", "nmos", c.w_pulldown, c.l, ad_pd, pd_pd),
        _mos("mdr", "qb", "q", "0", "0", "nmos", c.w_pulldown, c.l, ad_pd, pd_pd) + " delvto={dvp}",
        _mos("mul", "q", "qb", "vdd", "vdd", "pmos", c.w_pullup, c.l, ad_pu, pd_pu),
        _mos("mur", "qb", "q", "vdd", "vdd", "pmos", c.w_pullup, c.l, ad_pu, pd_pu),
        f"cwl wl 0 {_f(c.c_wl_wire)}" if c.c_wl_wire > 0 else "* no word-line wire capacitance",
        ".ends cell6t",
        f"* bit-line column: {B_BITS} compute rows, {c.n_idle} idle cells (m-multiplied access transistors,",
        f"* word line at 0 V; {c.n_idle_zero} hold 0 on the BLB side, the rest 1), wire capacitance,",
        "* precharge PMOS per bit line (gate pcb, active low) from supply vpre",
        ".subckt column bl blb " + " ".join(f"wl{i}" for i in range(B_BITS)) + " vdd vpre pcb "
        + " ".join(f"da{i}=0 dp{i}=0" for i in range(B_BITS)),
        *[f"xc{i} bl blb wl{i} vdd cell6t dva={{da{i}}} dvp={{dp{i}}}" for i in range(B_BITS)],
        *([_mos("midl0", "bl", "0", "0", "0", "nmos", c.w_access, c.l, ad_a, pd_a, m=c.n_idle_zero),
           _mos("midr0", "blb", "0", "0", "0", "nmos", c.w_access, c.l, ad_a, pd_a, m=c.n_idle_zero)]
          if c.n_idle_zero else []),
        *([_mos("midl1", "bl", "0", "vdd", "0", "nmos", c.w_access, c.l, ad_a, pd_a, m=c.n_idle - c.n_idle_zero),
           _mos("midr1", "blb", "0", "vdd", "0", "nmos", c.w_access, c.l, ad_a, pd_a, m=c.n_idle - c.n_idle_zero)]
          if c.n_idle - c.n_idle_zero else []),
        f"cwbl bl 0 {_f(c.c_wire)}",
        f"cwblb blb 0 {_f(c.c_wire)}",
        _mos("mpl", "bl", "pcb", "vpre", "vpre", "pmos", c.w_precharge, c.l, ad_pc, pd_pc),
        _mos("mpr", "blb", "pcb", "vpre", "vpre", "pmos", c.w_precharge, c.l, ad_pc, pd_pc),
        ".ends column",
    ]


@dataclass(frozen=True)
class MacPoint:
    """One column of a transient netlist: word-line level (V), stored operand b and, for Monte
    Carlo, the threshold shifts (V) of the four compute cells' BLB access and pull-down."""

    v_wl: float
    b: int
    dvth_access: tuple = (0.0, 0.0, 0.0, 0.0)
    dvth_pulldown: tuple = (0.0, 0.0, 0.0, 0.0)


def mac_netlist(c: Circuit, points: list[MacPoint], raw_path: str = "out.raw") -> str:
    """Transient netlist: one independent column per point, all sampled at ``c.t_sample``."""
    if not points:
        raise ValueError("mac_netlist needs at least one point")
    lines = _header(c, f"AID bit-line columns: {len(points)} points") + _subckts(c)
    te = c.t_sample + c.t_edge / 2
    pcb = (f"PWL(0 {_f(c.vdd)} {_f(te)} {_f(c.vdd)} {_f(te + c.t_edge)} 0 "
           f"{_f(te + c.t_edge + c.t_preset)} 0)")
    lines.append(f"vpcb pcb 0 {pcb}")
    saves, ics = [], []
    for k, p in enumerate(points):
        if not 0 <= p.v_wl <= 1.4:
            raise ValueError(f"word-line level must be in 0..1.4 V, not {p.v_wl!r} (point {k})")
        if not 0 <= p.b <= 15:
            raise ValueError(f"operand b must be in 0..15, not {p.b!r} (point {k})")
        wls = " ".join(f"wl{i}_{k}" for i in range(B_BITS))
        mc = " ".join(f"da{i}={_f(p.dvth_access[i])} dp{i}={_f(p.dvth_pulldown[i])}" for i in range(B_BITS)
                      if p.dvth_access[i] or p.dvth_pulldown[i])
        lines.append(f"x{k} bl_{k} blb_{k} {wls} vdd_{k} vpre_{k} pcb column" + (f" {mc}" if mc else ""))
        lines.append(f"vdd{k} vdd_{k} 0 {_f(c.vdd)}")
        lines.append(f"vpre{k} vpre_{k} 0 {_f(c.vdd)}")
        for i in range(B_BITS):
            pts = " ".join(f"{_f(t)} {_f(v * p.v_wl)}" for t, v in c.wl_waveform(i))
            lines.append(f"vwl{i}_{k} wl{i}_{k} 0 PWL({pts})")
            bit = (p.b >> i) & 1
            # b_i = 1: QB = 0 (BLB discharges), Q = VDD; b_i = 0: the opposite
            ics.append(f"v(x{k}.xc{i}.qb)={_f(0.0 if bit else c.vdd)} v(x{k}.xc{i}.q)={_f(c.vdd if bit else 0.0)}")
        ics.append(f"v(bl_{k})={_f(c.vdd)} v(blb_{k})={_f(c.vdd)}")
        saves.append(f".save v(blb_{k}) v(bl_{k}) vdd{k}#branch vpre{k}#branch "
                     + " ".join(f"vwl{i}_{k}#branch" for i in range(B_BITS)))
    lines += [".ic " + s for s in ics]
    lines += saves
    lines += [
        ".control",
        "set filetype=binary",
        f"tran {_f(c.t_edge / 5)} {_f(c.t_end)}",
        f"write {raw_path}",
        "quit",
        ".endc",
        ".end",
    ]
    return "\n".join(lines) + "\n"


def iv_netlist(c: Circuit, v_wl: np.ndarray, v_bl: np.ndarray, raw_path: str = "out.raw",
               dvth_access: float = 0.0, dvth_pulldown: float = 0.0) -> str:
    """DC sweep of the discharge stack: access NMOS (gate wl, drain bl) over a pull-down (gate VDD)."""
    ad_a, pd_a = c.drain_geometry(c.w_access)
    ad_pd, pd_pd = c.drain_geometry(c.w_pulldown)
    lines = _header(c, "AID discharge stack I-V") + [
        f"vdd vdd 0 {_f(c.vdd)}", "vbl bl 0 0", "vwl wl 0 0",
        _mos("ma", "bl", "wl", "qb", "0", "nmos", c.w_access, c.l, ad_a, pd_a) + f" delvto={_f(dvth_access)}",
        _mos("md", "qb", "vdd", "0", "0", "nmos", c.w_pulldown, c.l, ad_pd, pd_pd) + f" delvto={_f(dvth_pulldown)}",
    ]
    s_bl = (float(v_bl[0]), float(v_bl[-1]), float(v_bl[1] - v_bl[0]))
    s_wl = (float(v_wl[0]), float(v_wl[-1]), float(v_wl[1] - v_wl[0]))
    lines += [".control", "set filetype=binary",
              f"dc vbl {_f(s_bl[0])} {_f(s_bl[1])} {_f(s_bl[2])} vwl {_f(s_wl[0])} {_f(s_wl[1])} {_f(s_wl[2])}",
              f"write {raw_path} i(vbl) v(bl) v(wl)", "quit", ".endc", ".end"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# running and parsing

def ngspice_path() -> str:
    exe = shutil.which("ngspice")
    if exe is None:
        raise NgspiceMissing("ngspice not found on PATH (install it: `make setup`, or "
                             "`sudo apt-get install ngspice`)")
    return exe


def read_raw(path: Path) -> dict[str, np.ndarray]:
    """Read an ngspice raw file (binary or ascii, real data) into {lower-case name: array}."""
    data = Path(path).read_bytes()
    names, npts, nvars, binary, pos = [], None, None, None, 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        line = data[pos:end].decode("latin-1").strip()
        pos = end + 1
        key = line.split(":", 1)[0].strip().lower()
        if key == "no. variables":
            nvars = int(line.split(":", 1)[1])
        elif key == "no. points":
            npts = int(line.split(":", 1)[1])
        elif key == "flags" and "complex" in line.lower():
            raise NgspiceError(f"{path}: complex raw data not supported")
        elif key == "variables":
            if nvars is None:
                raise NgspiceError(f"{path}: raw header has no variable count")
            for _ in range(nvars):
                end = data.index(b"\n", pos)
                fields = data[pos:end].decode("latin-1").split()
                pos = end + 1
                names.append(fields[1].lower())
        elif key in ("binary", "values"):
            binary = key == "binary"
            break
    if binary is None or npts is None or nvars is None or len(names) != nvars:
        raise NgspiceError(f"{path}: not a complete ngspice raw file")
    if binary:
        need = npts * nvars * 8
        if len(data) - pos < need:
            raise NgspiceError(f"{path}: raw file truncated ({len(data) - pos} of {need} bytes)")
        arr = np.frombuffer(data, dtype="<f8", count=npts * nvars, offset=pos).reshape(npts, nvars)
    else:
        nums = re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", data[pos:].decode("latin-1"))
        vals = np.array([float(x) for x in nums])
        arr = vals.reshape(npts, nvars + 1)[:, 1:]  # each point starts with its index
    return {n: arr[:, j].copy() for j, n in enumerate(names)}


def run(netlist: str, work_dir: Path | None = None, name: str = "aid", timeout_s: float = 900) -> dict[str, np.ndarray]:
    """Run ``ngspice -b`` on ``netlist`` (its ``write`` must target ``out.raw``); return the vectors.

    The netlist, log and raw file live in ``work_dir`` (a temporary directory if None,
    removed on success; kept on failure, its path in the error).
    """
    exe = ngspice_path()
    keep = work_dir is not None
    wd = Path(work_dir) if keep else Path(tempfile.mkdtemp(prefix="nnaccel-spice-"))
    wd.mkdir(parents=True, exist_ok=True)
    cir, log, raw = wd / f"{name}.cir", wd / f"{name}.log", wd / "out.raw"
    cir.write_text(netlist)
    raw.unlink(missing_ok=True)
    try:
        proc = subprocess.run([exe, "-b", cir.name], cwd=wd, capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, "SPICE_ASCIIRAWFILE": "0"})
    except subprocess.TimeoutExpired:
        raise NgspiceError(f"ngspice did not finish within {timeout_s:.0f} s; netlist kept at {cir}") from None
    log.write_text(proc.stdout + proc.stderr)
    text = (proc.stdout + proc.stderr).lower()
    problem = None
    for pat in ("timestep too small", "singular matrix", "gmin stepping failed", "source stepping failed",
                "no convergence", "tran simulation(s) aborted", "dc solution failed", "error:", "fatal"):
        if pat in text:
            problem = pat
            break
    if problem is None and proc.returncode != 0:
        problem = f"exit status {proc.returncode}"
    if problem is None and not raw.exists():
        problem = "no output written"
    if problem is not None:
        raise NgspiceError(f"ngspice failed ({problem}); netlist kept at {cir}, log at {log}")
    try:
        out = read_raw(raw)
    except (NgspiceError, ValueError) as e:
        raise NgspiceError(f"{e}; netlist kept at {cir}") from None
    if not keep:
        shutil.rmtree(wd, ignore_errors=True)
    return out
