"""Verilog, port table and FuseSoC core file for an engine configuration (``flows`` writes them)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data, wiring

from rtl.engines import get_engine

VERSION = "0.1.0"

# Our behavioural simulation models of the vendor primitives a design may instantiate
# (RequantConfig.dsp="ecp5": the ECP5 MULT18X18D), by primitive. Simulation only: the
# co-simulation adds a model to the sources when the Verilog instantiates the primitive
# (:func:`sim_models`); synthesis for the vendor's device maps the instance to the
# primitive itself.
SIM_MODELS = {"MULT18X18D": Path(__file__).resolve().parent / "requant" / "ecp5_mult18x18d.v"}


def sim_models(verilog_text: str) -> dict[str, str]:
    """{file name: Verilog} of the :data:`SIM_MODELS` that ``verilog_text`` instantiates
    and does not define itself."""
    out = {}
    for prim, path in SIM_MODELS.items():
        used = re.search(rf"^\s*{prim}\s*(#|\\?[A-Za-z_])", verilog_text, re.M)
        if used and not re.search(rf"\bmodule\s+{prim}\b", verilog_text):
            out[path.name] = path.read_text()
    return out


@dataclass(frozen=True)
class Port:
    name: str  # Verilog port name
    path: tuple  # path in the Amaranth signature
    direction: str  # "in" or "out"
    width: int
    signed: bool  # the logical type (Verilog ports are all unsigned)
    fields: tuple = ()  # (name, offset, width, signed) for a struct-typed port


@dataclass
class Design:
    engine: str
    top: str
    config: object
    verilog: str
    ports: list[Port]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.verilog.encode()).hexdigest()

    def port(self, name: str) -> Port:
        for p in self.ports:
            if p.name == name:
                return p
        raise KeyError(name)

    def meta(self) -> dict:
        cfg = self.config
        return {
            "engine": self.engine,
            "top": self.top,
            "nnaccel_version": VERSION,
            "params": dataclasses.asdict(cfg),
            "latency": getattr(cfg, "latency", None),
            "throughput_per_cycle": getattr(cfg, "throughput", 1),
            "ports": [dict(dataclasses.asdict(p), path=list(p.path)) for p in self.ports],
            "clock": "clk (rising edge)",
            "reset": "rst (synchronous, active high)",
            "verilog_sha256": self.sha256,
        }


def port_table(component: wiring.Component) -> list[Port]:
    ports = [Port("clk", ("clk",), "in", 1, False), Port("rst", ("rst",), "in", 1, False)]
    for path, member, value in component.signature.flatten(component):
        layout = value.shape()
        shape = Shape.cast(layout)
        fields = ()
        if isinstance(layout, data.StructLayout):
            fields = tuple((n, f.offset, f.width, Shape.cast(f.shape).signed) for n, f in layout)
        ports.append(Port("__".join(map(str, path)), tuple(path),
                          "in" if member.flow == wiring.In else "out", shape.width, shape.signed, fields))
    return ports


def generate(engine: str, params: dict[str, str] | None = None, config=None, *, cache: bool = True) -> Design:
    """Elaborate ``engine`` with ``params`` (or a ready ``config``) into Verilog.

    Conversion takes seconds (tens for a large Phantom), so the result is kept in
    ``$NNACCEL_CACHE/verilog`` keyed by the engine, the configuration, the Amaranth
    version and the source of ``rtl/`` and ``golden/``: a sweep, ``nnaccel verify`` or a
    rerun asks for the same design again and again. ``cache=False`` always converts."""
    spec = get_engine(engine)
    cfg = config if config is not None else spec.config(params)
    path = _cache_path(engine, cfg) if cache else None
    if path is not None and path.exists():
        try:
            d = json.loads(path.read_text())
            ports = [Port(p["name"], tuple(p["path"]), p["direction"], p["width"], p["signed"],
                          tuple(tuple(f) for f in p["fields"])) for p in d["ports"]]
            os.utime(path)  # recently used (what `nnaccel cache` evicts last)
            return Design(engine, engine, cfg, d["verilog"], ports)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: convert again and overwrite
    component = spec.build(cfg)
    text = verilog.convert(component, name=engine, emit_src=False)
    design = Design(engine, engine, cfg, text, port_table(component))
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            tmp.write_text(json.dumps({"verilog": text, "ports": [dataclasses.asdict(p) for p in design.ports]}))
            os.replace(tmp, path)  # atomic: a concurrent reader sees all of it or nothing
        except OSError:
            pass  # a cache that cannot be written only costs time
    return design


_SOURCE_HASH: str | None = None


def _source_hash() -> str:
    """Hash of what the Verilog is made from: the ``rtl`` and ``golden`` sources and the
    Amaranth version (computed once per process)."""
    global _SOURCE_HASH
    if _SOURCE_HASH is None:
        import amaranth
        h = hashlib.sha256(getattr(amaranth, "__version__", "?").encode())
        root = Path(__file__).resolve().parent.parent
        for pkg in ("rtl", "golden"):
            for f in sorted((root / pkg).rglob("*.py")):
                h.update(str(f.relative_to(root)).encode())
                h.update(f.read_bytes())
        _SOURCE_HASH = h.hexdigest()
    return _SOURCE_HASH


def _cache_path(engine: str, cfg) -> Path:
    from golden.paths import cache_root
    key = hashlib.sha256(f"{engine} {cfg!r} {_source_hash()}".encode()).hexdigest()[:24]
    return cache_root() / "verilog" / f"{engine}-{key}.json"


def fusesoc_core(design: Design) -> str:
    """The FuseSoC core file. A design that instantiates vendor primitives
    (:func:`sim_models`) lists our models of them in a ``sim_models`` fileset, used by
    the ``lint`` and ``sim`` targets and not by ``default`` (synthesis for the vendor's
    device maps the primitive itself)."""
    name = design.engine
    models = list(sim_models(design.verilog))
    fileset = "".join(f"\n      - {m}" for m in models)
    sets = "\n    filesets: [rtl, sim_models]" if models else ""
    return f"""CAPI=2:
name: nnaccel:engines:{name}:{VERSION}
description: nnaccel {name} engine, generated by `nnaccel verilog {name}` (see {name}.json)

filesets:
  rtl:
    files:
      - {name}.v
    file_type: verilogSource
""" + (f"""  sim_models:
    files:{fileset}
    file_type: verilogSource
""" if models else "") + f"""
targets:
  default: &default
    filesets: [rtl]
    toplevel: {design.top}
  lint:
    <<: *default{sets}
    default_tool: verilator
    tools:
      verilator:
        mode: lint-only
        verilator_options: [-Wno-fatal]
""" + (f"""  sim:
    <<: *default{sets}
""" if models else "")
