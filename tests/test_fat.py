"""FAT engine: mapper and cycle model, RTL co-simulation in every mode, static errors, mutants."""

import numpy as np
import pytest

from cosim.fat import RANDOM_LAYERS, random_layer, run_plan
from flows.cli import main
from golden.nets import digits
from rtl.export import generate
from rtl.fat.config import FatConfig
from rtl.fat.mapper import MappingError, plan_layer
from tests.conftest import mutate

SMALL = {"rows": "256", "cols": "16"}
MODES = [{"mode": "fat"}, {"mode": "fat", "bitskip": "1"}, {"mode": "parapim"}, {"mode": "dense"}]


def layers(seed=0):
    rng = np.random.default_rng(seed)
    return [random_layer(rng, name=f"r{i}", **spec) for i, spec in enumerate(RANDOM_LAYERS)]


@pytest.mark.parametrize("params", MODES, ids=lambda p: "+".join(p.values()))
def test_model_accumulators_equal_golden(params):
    """The cycle model replays the array bit by bit: its accumulators must be the golden ones."""
    cfg = generate("fat", {**SMALL, **params}).config
    for vec in layers():
        plan = plan_layer(vec, cfg)
        got = np.concatenate([np.array(a) for a in plan.model["accumulators"]])
        acc = np.asarray(vec["acc"], dtype=np.int64).ravel()[plan.out_index]
        o_idx = _channel_of(vec, plan.out_index)
        assert np.array_equal(got + np.asarray(vec["bias"])[o_idx], acc), vec["name"]


def _channel_of(vec, flat):
    y = np.asarray(vec["y"])
    hw = int(np.prod(y.shape[2:])) if y.ndim > 2 else 1
    return (flat // hw) % y.shape[1]


@pytest.mark.verilator
@pytest.mark.parametrize("params", MODES, ids=lambda p: "+".join(p.values()))
def test_rtl_bit_exact_and_counters_match_model(params):
    """Outputs exact, every counter equal to the cycle model, cycles equal up to the harness offset."""
    design = generate("fat", {**SMALL, **params})
    for k, vec in enumerate(layers(1)):
        plan = plan_layer(vec, design.config)
        r = run_plan(design, plan, vec, seed=k)
        assert r.passed, f"{vec['name']}: {r.summary()} first mismatch {r.first_mismatch}"
        model = {key: v for key, v in plan.model.items() if key not in ("accumulators", "cycles")}
        assert r.extra["stats"] == model, f"{vec['name']}: RTL counters {r.extra['stats']} != model {model}"
        # The harness counts from reset to the last output: two cycles more than the model.
        assert r.cycles - plan.model["cycles"] == 2, (r.cycles, plan.model["cycles"])


@pytest.mark.verilator
def test_rtl_under_backpressure_stays_exact():
    design = generate("fat", {**SMALL, "mode": "fat", "bitskip": "1"})
    vec = layers(2)[0]
    r = run_plan(design, plan_layer(vec, design.config), vec, idle=0.3, stall=0.5, seed=9)
    assert r.passed, r.summary()


@pytest.mark.icarus
def test_icarus_agrees_with_verilator():
    design = generate("fat", {**SMALL, "mode": "fat", "bitskip": "1"})
    vec = layers(3)[1]
    plan = plan_layer(vec, design.config)
    rs = [run_plan(design, plan, vec, sim=sim) for sim in ("verilator", "icarus")]
    assert all(r.passed for r in rs), [r.summary() for r in rs]
    assert rs[0].cycles == rs[1].cycles and rs[0].extra["stats"] == rs[1].extra["stats"]


@pytest.mark.verilator
def test_mutated_fat_verilog_fails(tmp_path, capsys):
    design = generate("fat", {})
    p = tmp_path / "fat_mutant.v"
    p.write_text(mutate(design.verilog, r"assign c_out = (\\\$\d+ ) \| (\\\$\d+ );", r"assign c_out = \1& \2;"))
    assert main(["cosim", "fat", "--verilog", str(p)]) == 1
    out = capsys.readouterr().out
    assert "FAIL: fat on verilator" in out and "first mismatch" in out


@pytest.mark.verilator
@pytest.mark.icarus
@pytest.mark.slow
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_verify_every_ternary_demo_layer(sim, tmp_path, capsys):
    argv = ["verify", "--engine", "fat", "--variant", "ternary", "--images", "2", "--sim", sim, "-o", str(tmp_path)]
    assert main(argv) == 0
    assert "PASS: 4 layers" in capsys.readouterr().out


def test_non_ternary_weights_are_rejected():
    vec = layers()[0]
    vec["w"] = vec["w"] * 2
    with pytest.raises(MappingError, match=r"weights must lie in \{-1, 0, \+1\}"):
        plan_layer(vec, FatConfig())


def test_accumulator_too_narrow_is_found_statically():
    vec = random_layer(np.random.default_rng(0), kind="linear", c=600, o=2, n=1)
    with pytest.raises(MappingError, match="accumulator too narrow"):
        plan_layer(vec, FatConfig(acc_bits=18))


def test_layer_that_cannot_be_mapped():
    vec = dict(layers()[0], kind="depthwise", name="dw1")
    with pytest.raises(MappingError, match="dw1: layer kind 'depthwise' is not supported by fat"):
        plan_layer(vec, FatConfig())


def test_smallest_subarray_still_maps_by_tiling():
    """With one operand slot per tile the reduction is tiled down to single terms."""
    vec = layers()[0]
    plan = plan_layer(vec, FatConfig(rows=31, acc_bits=20, cols=8))
    assert plan.tiles["k_tile"] == 1 and plan.tiles["k_tiles"] == vec["w"][0].size
    got = np.concatenate([np.array(a) for a in plan.model["accumulators"]])
    acc = np.asarray(vec["acc"], dtype=np.int64).ravel()[plan.out_index]
    assert np.array_equal(got + np.asarray(vec["bias"])[_channel_of(vec, plan.out_index)], acc)


@pytest.mark.parametrize("kw, msg", [({"mode": "magic"}, "mode must be one of"),
                                     ({"mode": "parapim", "bitskip": True}, "bitskip needs mode 'fat'"),
                                     ({"acc_bits": 8}, "acc_bits must lie in"), ({"cols": 0}, "cols must be")])
def test_config_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        FatConfig(**kw)


def test_cli_rejects_bad_fat_param(capsys):
    assert main(["verilog", "fat", "--param", "mode=magic"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mode must be one of" in err


def test_demo_net_layers_map():
    net = digits.build("ternary")
    for vec in digits.layer_vectors(net, 1):
        plan = plan_layer(vec, FatConfig())
        assert len(plan.expected) == np.asarray(vec["y"]).size
