"""Walk the engine table: every engine answers the same protocol (rtl.engines).

For each registered engine: a default configuration and its Verilog; ``maps`` gives
None or a one-line reason for each layer of a small zoo, and ``plan`` refuses
exactly the layers ``maps`` refuses, with the same reason (NotMapped); for the
layers it maps, ``cycles`` from the model, ``run`` in co-simulation (bit-exact,
the RTL's cycles near the model's), and ``energy`` where the engine has a table.
"""

from __future__ import annotations

import numpy as np
import pytest

from cosim.engines import run_layer
import cosim.engines as cosim_engines
from golden.errors import NotMapped
from golden.layer import LayerVectors, layer_vectors_from
from rtl.engines import ENGINES, Engine, get_engine, register
from rtl.export import generate

# What each engine must be able to run (the rest it may refuse, with a reason).
MUST_MAP = {
    "requant": {"conv3x3", "conv_s2", "depthwise", "linear", "ternary"},
    "fat": {"ternary"},
    "phantom": {"conv3x3", "conv_s2", "depthwise", "linear", "ternary"},
    "phantom2d": {"conv3x3", "conv_s2", "depthwise", "linear", "ternary"},
    "winograd": {"conv3x3"},
    "aid": set(),
}
MUST_REFUSE = {"fat": {"conv3x3"}, "winograd": {"conv_s2", "depthwise", "linear"},
               "aid": {"conv3x3", "conv_s2", "depthwise", "linear", "ternary"}}


def zoo() -> dict[str, LayerVectors]:
    rng = np.random.default_rng(7)

    def layer(name, kind, xshape, wshape, stride=1, padding=0, ternary=False):
        x = rng.integers(-128, 128, size=xshape)
        w = rng.integers(-1, 2, size=wshape) if ternary else rng.integers(-127, 128, size=wshape)
        w = w * (rng.random(wshape) < 0.6)
        o = wshape[0]
        return layer_vectors_from(name=name, kind=kind, x=x, w=w, bias=rng.integers(-3000, 3000, size=o),
                                  input_zero_point=int(rng.integers(-128, 0)),
                                  real_multipliers=rng.uniform(0.001, 0.01, size=o) * (20 if ternary else 1),
                                  output_zero_point=-100, stride=stride, padding=padding)

    return {
        "conv3x3": layer("conv3x3", "conv", (2, 3, 6, 5), (4, 3, 3, 3), padding=1),
        "conv_s2": layer("conv_s2", "conv", (1, 4, 7, 7), (3, 4, 3, 3), stride=2, padding=1),
        "depthwise": layer("depthwise", "depthwise", (1, 4, 6, 6), (4, 1, 3, 3), padding=1),
        "linear": layer("linear", "linear", (3, 20), (5, 20)),
        "ternary": layer("ternary", "conv", (1, 3, 5, 5), (4, 3, 3, 3), padding=1, ternary=True),
    }


def test_table_has_the_six_engines_and_rejects_a_duplicate():
    assert set(ENGINES) == {"requant", "fat", "phantom", "phantom2d", "winograd", "aid"}
    with pytest.raises(ValueError, match="registered already"):
        register(Engine("fat", "again", object, object, "rtl.fat"))
    with pytest.raises(ValueError, match="unknown engine 'nosuch'"):
        get_engine("nosuch")


@pytest.mark.parametrize("name", list(ENGINES))
def test_every_engine_has_every_room(name):
    engine = get_engine(name)
    cfg = engine.config()
    assert isinstance(cfg, engine.config_cls)
    for room in ("config", "mapper", "model"):
        assert engine.room(room) is not None, f"{name} has no {engine.package}.{room}"
    assert callable(getattr(cosim_engines.testbench(name), "cosim"))
    design = generate(name)
    assert f"module {design.top}" in design.verilog


@pytest.mark.parametrize("name", list(ENGINES))
def test_maps_and_plan_agree(name):
    engine = get_engine(name)
    for key, vec in zoo().items():
        why = engine.maps(vec)
        assert why is None or (isinstance(why, str) and why and "\n" not in why), (name, key, why)
        if key in MUST_MAP[name]:
            assert why is None, f"{name} must map {key}: {why}"
        if key in MUST_REFUSE.get(name, ()):
            assert why, f"{name} must refuse {key}"
        if why:
            with pytest.raises(NotMapped) as e:
                engine.plan(vec)
            assert str(e.value) == why
        else:
            model = engine.cycles(engine.plan(vec))
            assert isinstance(model["cycles"], int) and model["cycles"] > 0, (name, key, model)


@pytest.mark.verilator
@pytest.mark.parametrize("name", [n for n in ENGINES if MUST_MAP[n]])
def test_run_is_bit_exact_and_near_the_model(name):
    engine = get_engine(name)
    design = generate(name)
    for key in sorted(MUST_MAP[name]):
        vec = zoo()[key]
        r = run_layer(design, vec)
        assert r.passed, (name, key, r.summary(), r.first_mismatch)
        assert r.outputs == vec.y.size, (name, key, r.outputs, vec.y.size)
        model = engine.cycles(engine.plan(vec, design.config))["cycles"]
        assert abs(r.cycles - model) <= max(2, 0.02 * model) + 16 * r.extra.get("batches", 1), (name, key, r.cycles, model)
        if engine.has_energy:
            e = engine.energy(cosim_engines.energy_counters(r), design.config)
            assert e and all(v >= 0 for v in e.values() if isinstance(v, (int, float))), (name, e)


def test_only_the_aid_controller_runs_no_layers():
    from rtl.engines import ENGINES
    assert [n for n, e in ENGINES.items() if not e.runs_layers] == ["aid"]


def test_energy_tables_add_up_and_follow_the_work():
    """Phantom's and Winograd's energy tables: parts sum to the total, more work costs
    more, and a missing counter is named."""
    from rtl.phantom.config import PhantomConfig
    from rtl.winograd.config import WinogradConfig
    ph = get_engine("phantom")
    e1 = ph.energy({"products": 100, "chunks": 10, "cycles": 30}, PhantomConfig())
    e2 = ph.energy({"products": 200, "chunks": 10, "cycles": 30}, PhantomConfig())
    assert e1["total"] == pytest.approx(sum(v for k, v in e1.items() if k != "total"))
    assert e2["product"] == pytest.approx(2 * e1["product"]) and e2["buffer"] == e1["buffer"]
    with pytest.raises(ValueError, match="chunks"):
        ph.energy({"products": 1, "cycles": 1}, PhantomConfig())
    wg = get_engine("winograd")
    small, big = (wg.energy({"beats": 1, "groups": 1}, WinogradConfig(m=m)) for m in (2, 4))
    assert small["total"] == pytest.approx(sum(v for k, v in small.items() if k != "total"))
    # F(4x4) multiplies 36 elements per beat where F(2x2) multiplies 16, and wider ones
    # (18 x 16 bits against 12 x 11): 4.9x the multiply energy per beat for 4x the outputs
    assert big["multiply"] / small["multiply"] == pytest.approx(36 * 18 * 16 / (16 * 12 * 11))
