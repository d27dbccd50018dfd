"""FAT engine: mapper and cycle model, RTL co-simulation in every mode, static errors, mutants."""

import dataclasses
import json
import re

import numpy as np
import pytest

from cosim.engines import run_layer
from cosim.testbenches.fat import HARNESS_CYCLES, RANDOM_LAYERS, invalid_codes, random_layer, run
from flows.cli import main
from golden.errors import NotMapped
from golden.nets import digits
from rtl.engines import get_engine
from rtl.export import generate
from rtl.fat import model
from rtl.fat.config import FatConfig
from rtl.fat.energy import energy, energy_pj
from rtl.fat.mapper import maps, plan
from tests.conftest import mutate

SMALL = {"rows": "256", "cols": "16"}
MODES = [{"mode": "fat"}, {"mode": "fat", "bitskip": "1"}, {"mode": "parapim"}, {"mode": "dense"}]
FAST_RQ = {"mode": "fat", "requant_pipeline": "fast"}  # the 8-stage requantizer


def layers(seed=0):
    rng = np.random.default_rng(seed)
    return [random_layer(rng, name=f"r{i}", **spec) for i, spec in enumerate(RANDOM_LAYERS)]


@pytest.mark.parametrize("params", MODES, ids=lambda p: "+".join(p.values()))
def test_model_accumulators_equal_golden(params):
    """The cycle model replays the array bit by bit: its accumulators must be the golden ones."""
    cfg = generate("fat", {**SMALL, **params}).config
    for vec in layers():
        p = plan(vec, cfg)
        got = np.concatenate([np.array(a) for a in p.model["accumulators"]])
        acc = vec.acc.ravel()[p.out_index]
        o_idx = _channel_of(vec, p.out_index)
        assert np.array_equal(got + vec.bias[o_idx], acc), vec.name


def test_model_follows_the_requantizer_latency():
    """The requantizer's pipeline moves only the last output: 3 cycles more with "fast"."""
    compact = FatConfig(**{k: int(v) for k, v in SMALL.items()})
    fast = dataclasses.replace(compact, requant_pipeline="fast")
    assert (compact.requant.latency, fast.requant.latency) == (5, 8)
    for vec in layers():
        a, b = model.cycles(plan(vec, compact)), model.cycles(plan(vec, fast))
        assert b["cycles"] - a["cycles"] == 3 and {**a, "cycles": 0} == {**b, "cycles": 0}, vec.name


def _channel_of(vec, flat):
    y = vec.y
    hw = int(np.prod(y.shape[2:])) if y.ndim > 2 else 1
    return (flat // hw) % y.shape[1]


@pytest.mark.verilator
@pytest.mark.parametrize("params", MODES + [pytest.param(FAST_RQ, marks=pytest.mark.slow)],
                         ids=lambda p: "+".join(p.values()))
def test_rtl_bit_exact_and_counters_match_model(params):
    """Outputs exact, every counter equal to the cycle model, cycles equal up to the harness offset."""
    design = generate("fat", {**SMALL, **params})
    for k, vec in enumerate(layers(1)):
        p = plan(vec, design.config)
        r = run(design, p, seed=k)
        assert r.passed, f"{vec.name}: {r.summary()} first mismatch {r.first_mismatch} {r.extra.get('error')}"
        predicted = model.cycles(p)
        counters = {key: v for key, v in predicted.items() if key != "cycles"}
        stats = dict(r.extra["stats"])
        assert stats.pop("cycles") == r.cycles
        assert stats == counters, f"{vec.name}: RTL counters {stats} != model {counters}"
        # The harness counts from reset to the last output: two cycles more than the model.
        assert HARNESS_CYCLES == 2 and r.cycles - predicted["cycles"] == 2, (r.cycles, predicted["cycles"])
        assert energy(r.extra["stats"], design.config) == energy_pj(stats, r.cycles, design.config.cols)


@pytest.mark.verilator
def test_run_fails_when_counters_or_cycles_disagree_with_the_model():
    """The run's model check can fail: a plan whose model is off by one add, or by one cycle."""
    design = generate("fat", {**SMALL, "mode": "fat"})
    p = plan(layers(1)[0], design.config)
    for key in ("adds", "cycles"):
        bad = dataclasses.replace(p, model={**p.model, key: p.model[key] + 1})
        r = run(design, bad)
        assert not r.passed and r.mismatches == 0, (key, r.summary())
        assert ("RTL counters" if key == "adds" else "cycle model") in r.extra["error"], r.extra["error"]


@pytest.mark.icarus
@pytest.mark.parametrize("params", [{"mode": "fat"}, {"mode": "dense"}], ids=lambda p: p["mode"])
def test_every_invalid_code_of_a_word_counts_in_errors(params):
    """Three invalid codes in one WEIGHTS word count three errors, as the cycle model and
    the docs say (the RTL used to count the word once)."""
    design = generate("fat", {**SMALL, **params})
    p = plan(layers(1)[0], design.config)
    bad = invalid_codes(p, np.random.default_rng(0), n=3, per_word=3)
    i = next(i for i in np.flatnonzero(bad.cmds["data"][:, 0] != p.cmds["data"][:, 0]))
    word, cnt = int(bad.cmds["data"][i, 0]), int(bad.cmds["cnt"][i])
    assert sum((word >> (2 * j)) & 3 == 2 for j in range(cnt)) == 3  # all three in one word
    assert bad.model["errors"] == 3
    r = run(design, bad, sim="icarus")
    assert r.passed, (r.summary(), r.extra.get("error"))
    assert r.extra["stats"]["errors"] == 3, r.extra["stats"]


@pytest.mark.verilator
def test_run_layer_splits_batches_that_do_not_fit(monkeypatch):
    """A 3-image layer in image batches: exact, counters summed equal to the models' summed."""
    import cosim.testbenches.fat as tb
    design = generate("fat", {**SMALL, "mode": "fat"})
    vec = layers(1)[4]  # linear, 3 images
    monkeypatch.setattr(tb, "capacity", lambda d: tb.words(plan(vec.select(0, 1), d.config)))
    r = run_layer(design, vec)
    assert r.passed and r.extra["batches"] == 3 and r.outputs == vec.y.size, (r.summary(), r.extra.get("error"))
    stats = dict(r.extra["stats"])
    assert stats.pop("cycles") == r.cycles
    assert stats == {k: v for k, v in r.extra["model"].items() if k != "cycles"}


def test_energy_needs_the_runs_cycles():
    p = plan(layers()[0], FatConfig())
    predicted = model.cycles(p)
    assert energy(predicted, FatConfig())["total"] > 0
    with pytest.raises(ValueError, match="fat energy needs the counters cycles"):
        energy({k: v for k, v in predicted.items() if k != "cycles"}, FatConfig())


@pytest.mark.verilator
def test_rtl_under_backpressure_stays_exact():
    design = generate("fat", {**SMALL, "mode": "fat", "bitskip": "1"})
    vec = layers(2)[0]
    p = plan(vec, design.config)
    r = run(design, p, idle=0.3, stall=0.5, seed=9)
    assert r.passed, (r.summary(), r.extra.get("error"))
    # the counters do not depend on pacing: run compared them with the model's
    assert {k: v for k, v in r.extra["stats"].items() if k != "cycles"} == \
        {k: v for k, v in model.cycles(p).items() if k != "cycles"}


@pytest.mark.icarus
def test_icarus_agrees_with_verilator():
    design = generate("fat", {**SMALL, "mode": "fat", "bitskip": "1"})
    vec = layers(3)[1]
    p = plan(vec, design.config)
    rs = [run(design, p, sim=sim) for sim in ("verilator", "icarus")]
    assert all(r.passed for r in rs), [r.summary() for r in rs]
    assert rs[0].cycles == rs[1].cycles and rs[0].extra["stats"] == rs[1].extra["stats"]


@pytest.mark.verilator
def test_mutated_fat_verilog_fails(tmp_path, capsys):
    design = generate("fat", {})
    p = tmp_path / "fat_mutant.v"
    # the carry of a step whose accumulator and operand bits are both 1 lost (the carry
    # latch's value for that pair of array bits, see late_rows in rtl/fat/engine.py)
    p.write_text(mutate(design.verilog, r"(assign carry_if_11 = starting \? \\\$\d+  : )\\\$\d+ ;", r"\g<1>32'h0;"))
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
    assert "PASS: digits (ternary) end to end" in capsys.readouterr().out
    run = json.loads((tmp_path / "results.json").read_text())["runs"][0]
    assert [l["engine"] for l in run["layers"]] == ["fat", "fat", "fat", "host", "fat"]  # flatten on the host
    assert run["images_equal"] == 2 and all(l["energy"]["total"] > 0 for l in run["layers"] if l["engine"] == "fat")


def _refused(vec, cfg, pattern):
    """maps gives the reason (one line) and plan raises NotMapped with it."""
    why = maps(vec, cfg)
    assert why and "\n" not in why
    assert re.search(pattern, why), why
    with pytest.raises(NotMapped, match=pattern):
        plan(vec, cfg)
    with pytest.raises(NotMapped) as e:
        get_engine("fat").plan(vec, cfg)
    assert str(e.value) == why


def test_non_ternary_weights_are_rejected():
    vec = layers()[0]
    vec = dataclasses.replace(vec, w=vec.w * 2)
    _refused(vec, FatConfig(), r"r0: weights must lie in \{-1, 0, \+1\} for fat, found -?2")


def test_accumulator_too_narrow_is_found_statically():
    vec = random_layer(np.random.default_rng(0), kind="linear", c=600, o=2, n=1)
    _refused(vec, FatConfig(acc_bits=18), "rand: accumulator too narrow")
    assert maps(vec, FatConfig(acc_bits=19)) is None


def test_layer_that_cannot_be_mapped():
    vec = random_layer(np.random.default_rng(0), name="dw1", c=4, o=4)
    L = dataclasses.replace(vec.layer, kind="depthwise", groups=4)
    vec = dataclasses.replace(vec, layer=L, w=vec.w[:, :1])
    _refused(vec, FatConfig(), "dw1: layer kind 'depthwise' is not supported by fat")


def test_operands_wider_than_act_bits_are_refused():
    vec = layers()[0]
    _refused(vec, FatConfig(act_bits=4, acc_bits=20), r"r0: operands x - zero_point must lie in \[-15, 15\]")


def test_smallest_subarray_still_maps_by_tiling():
    """With one operand slot per tile the reduction is tiled down to single terms."""
    vec = layers()[0]
    p = plan(vec, FatConfig(rows=31, acc_bits=20, cols=8))
    assert p.tiles["k_tile"] == 1 and p.tiles["k_tiles"] == vec.w[0].size
    got = np.concatenate([np.array(a) for a in p.model["accumulators"]])
    acc = vec.acc.ravel()[p.out_index]
    assert np.array_equal(got + vec.bias[_channel_of(vec, p.out_index)], acc)


@pytest.mark.parametrize("kw, msg", [({"requant_pipeline": "slow"}, "requant_pipeline must be one of compact, fast"),
                                     ({"mode": "magic"}, "mode must be one of"),
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
        assert maps(vec, FatConfig()) is None, vec.name
        assert len(plan(vec, FatConfig()).expected) == vec.y.size
