"""`nnaccel formal`: properties proved on the real design, a broken design caught, the
command's errors and its JSON (SymbiYosys + yices from the venv; see docs/formal.md)."""

from __future__ import annotations

import json
import random

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from cosim.formal import RESULTS, check
from flows.cli import main
from golden.quant import INT32_MAX, INT32_MIN, SHIFT_MAX, SHIFT_MIN, requantize
from rtl.requant.config import RequantConfig
from rtl.common.formal import Property
from rtl.requant.formal import PROPERTIES, RequantTop, reference


def _prop(name):
    return next(p for p in PROPERTIES if p.name == name)


def test_requant_stages_prove_full_width(tmp_path):
    r = check(_prop("requant.stages"), tmp_path, timeout_s=120)
    assert r.result == "PASS", r.detail
    assert (r.method, r.depth) == ("prove", 2)


class LeakyRequantizer(wiring.Component):
    """A broken design with the requantizer's ports: its output register takes every
    offered input, ready or not, so an offered payload changes under back-pressure."""

    def __init__(self):
        cfg = RequantConfig()
        super().__init__({"i": In(stream.Signature(cfg.in_layout())), "o": Out(stream.Signature(signed(8))),
                          "zero_point": In(signed(8)), "act_min": In(signed(8)), "act_max": In(signed(8))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(1)
        m.d.sync += self.o.valid.eq(self.o.valid | self.i.valid)
        with m.If(self.i.valid):
            m.d.sync += self.o.payload.eq(self.i.payload.acc[:8])
        return m


def test_broken_design_fails_naming_the_property(tmp_path):
    prop = Property("requant.o_hold", "requant", "hold, on a broken design",
                    lambda: RequantTop("hold", component=LeakyRequantizer()), "prove", 4)
    r = check(prop, tmp_path, timeout_s=60)
    assert r.result == "FAIL", (r.result, r.detail)
    assert r.name == "requant.o_hold"
    assert "o.payload changed while not accepted" in r.detail
    assert (tmp_path / "requant.o_hold" / "sby.log").exists()


def test_reference_matches_golden_by_simulation():
    """The formal reference is itself checked against golden.quant.requantize."""
    m = Module()
    acc, mult = Signal(signed(32)), Signal(signed(32))
    shift, zp, lo, hi = Signal(signed(6)), Signal(signed(8)), Signal(signed(8)), Signal(signed(8))
    out = reference(m, acc, mult, shift, zp, lo, hi, 32, 8)
    rnd = random.Random(15)
    cases = [(INT32_MIN, INT32_MIN, 0), (INT32_MAX, INT32_MAX, SHIFT_MAX), (-3, 1 << 30, SHIFT_MIN),
             (INT32_MIN, 1 << 30, -1)]
    cases += [(rnd.randrange(INT32_MIN, INT32_MAX + 1), rnd.randrange(INT32_MIN, INT32_MAX + 1),
               rnd.randrange(SHIFT_MIN, SHIFT_MAX + 1)) for _ in range(300)]
    bad = []

    async def tb(ctx):
        for a, q, s in cases:
            z, lo_v, hi_v = rnd.randrange(-128, 128), rnd.randrange(-128, 0), rnd.randrange(0, 128)
            for sig, v in ((acc, a), (mult, q), (shift, s), (zp, z), (lo, lo_v), (hi, hi_v)):
                ctx.set(sig, v)
            expected = int(requantize(a, q, s, z, lo_v, hi_v))
            if ctx.get(out) != expected:
                bad.append((a, q, s, z, lo_v, hi_v, ctx.get(out), expected))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert not bad, f"reference != golden (acc, mult, shift, zp, min, max, got, expected): {bad[:3]}"


def test_unknown_engine_exits_2_with_one_line(capsys):
    assert main(["formal", "nosuch", "-o", "/nonexistent/never"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nosuch" in err[0], err


def test_formal_json_written(tmp_path, capsys):
    out = tmp_path / "f"
    assert main(["formal", "requant", "--property", "requant.o_hold", "-o", str(out)]) == 0
    doc = json.loads((out / "formal.json").read_text())
    assert doc["engine"] == "requant" and doc["passed"] is True
    (p,) = doc["properties"]
    assert set(p) >= {"name", "engine", "config", "result", "method", "depth", "time_s", "detail", "summary"}
    assert (p["name"], p["engine"], p["result"], p["method"]) == ("requant.o_hold", "requant", "PASS", "prove")
    assert p["result"] in RESULTS and p["config"]["acc_bits"] == 32
    assert "requant.o_hold" in capsys.readouterr().out


def test_every_property_is_named_once():
    from flows.formal import engines_with_properties, properties
    names = [p.name for p in properties("all")]
    assert len(names) == len(set(names))
    assert {"requant", "fat", "phantom", "phantom2d", "winograd"} <= set(engines_with_properties())
    for p in properties("all"):
        assert p.name.startswith(p.engine + ".") and p.method in ("prove", "bmc") and p.depth >= 1
