"""`nnaccel formal`: properties proved on the real design, a broken design caught, the
command's errors and its JSON (SymbiYosys + yices from the venv; see docs/formal.md)."""

from __future__ import annotations

import json
import random

import pytest

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


# ---- stream counting: every engine's count property fails on a broken design --------------

def broken(cls, kind: str):
    """``cls`` with its output stream broken after elaboration: "dup" offers an output again
    in the cycle after one is taken (an output from nowhere), "drop" hides ``o.valid``
    every other cycle while the engine still sees ``o.ready`` (outputs lost)."""

    class Broken(cls):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            inner = Signal(name="inner_valid")
            m.d.comb += inner.eq(self.o.valid)
            if kind == "dup":
                took = Signal(name="took")
                m.d.sync += took.eq(inner & self.o.ready)
                with m.If(took):
                    m.d.comb += self.o.valid.eq(1)
            else:
                hide = Signal(name="hide")
                m.d.sync += hide.eq(~hide)
                with m.If(hide):
                    m.d.comb += self.o.valid.eq(0)
            return m

    Broken.__name__ = f"{kind.capitalize()}{cls.__name__}"
    return Broken


def _count_cases():
    from rtl.aid import formal as aid_f
    from rtl.aid.controller import AidController
    from rtl.fat import formal as fat_f
    from rtl.fat.engine import FatEngine
    from rtl.phantom import formal as ph_f
    from rtl.phantom.core import PhantomCore
    from rtl.phantom2d import formal as p2_f
    from rtl.phantom2d.mesh import PhantomMesh
    from rtl.winograd import formal as wi_f
    from rtl.winograd.engine import WinogradEngine
    return {  # name: (wrapper around a component, component class, its configuration, bmc depth to an output)
        "aid.count": (lambda c: aid_f.AidTop("count", component=c), AidController, aid_f.CONFIG, 22),
        "fat.count": (lambda c: fat_f.FatTop("count", component=c), FatEngine, fat_f.CONFIG, 16),
        "phantom.count": (lambda c: ph_f.PhantomTop("count", component=c), PhantomCore, ph_f.CONFIG, 12),
        "phantom2d.count": (lambda c: p2_f.MeshTop("count", component=c), PhantomMesh, p2_f.CONFIG, 13),
        "winograd.count": (lambda c: wi_f.WinogradCountTop(component=c), WinogradEngine, wi_f.CONFIG, 16),
    }


@pytest.mark.parametrize("name,kind", [("aid.count", "dup"), ("fat.count", "dup"), ("phantom.count", "drop"),
                                       ("phantom2d.count", "drop"), ("winograd.count", "dup")])
def test_count_fails_on_a_broken_engine(tmp_path, name, kind):
    wrap, cls, cfg, depth = _count_cases()[name]
    prop = Property(name, name.split(".")[0], f"{name} on a {kind} design", lambda: wrap(broken(cls, kind)(cfg)),
                    "bmc", depth)
    r = check(prop, tmp_path, timeout_s=120)
    assert r.result == "FAIL", (r.result, r.detail)
    expected = "duplicated or from nowhere" if kind == "dup" else "outputs owed differ"
    assert expected in r.detail, r.detail


@pytest.mark.parametrize("name", ["aid.count", "fat.count"])
def test_count_proves_on_the_real_engine(tmp_path, name):
    from flows.formal import properties
    prop = next(p for p in properties(name.split(".")[0]) if p.name == name)
    r = check(prop, tmp_path, timeout_s=120)
    assert (r.result, r.method) == ("PASS", "prove"), r.detail


def test_phantom_offsets_fail_with_inconsistent_masks(tmp_path):
    from rtl.phantom.formal import PhantomTop
    prop = Property("phantom.offsets", "phantom", "offsets, masks not assumed consistent",
                    lambda: PhantomTop("offsets", consistent=False), "bmc", 3)
    r = check(prop, tmp_path, timeout_s=120)
    assert r.result == "FAIL", (r.result, r.detail)
    assert "offset past the chunk's packed count" in r.detail


def test_winograd_accumulator_too_narrow_fails(tmp_path):
    """Sized for 1 input channel (22-bit M), fed groups of 2: the bound property fails."""
    from rtl.common.formal import CUT_MULTIPLIERS
    from rtl.winograd.formal import CONFIG_1, WinogradAccTop
    prop = Property("winograd.acc_no_overflow_row0", "winograd", "acc row 0, accumulator for 1 channel, groups of 2",
                    lambda: WinogradAccTop(0, config=CONFIG_1, limit=2), "bmc", 7, cut=CUT_MULTIPLIERS)
    r = check(prop, tmp_path, timeout_s=120)
    assert r.result == "FAIL", (r.result, r.detail)
    assert "past the accumulator's range" in r.detail
