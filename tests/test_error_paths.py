"""The engines' error paths, as `nnaccel cosim` runs them (issue 15): FAT counts invalid
weight codes and processes them as zeros; Phantom flags chunks whose packed counts
disagree with their masks, counting them and naming the first. Each check is shown
able to fail."""

import numpy as np
import pytest

import cosim.testbenches.phantom as phantom_tb
from cosim.testbenches import fat as fat_tb
from rtl.export import generate
from rtl.fat import mapper as fat_mapper


@pytest.mark.verilator
def test_fat_counts_invalid_codes_and_treats_them_as_zeros():
    design = generate("fat", {})
    rng = np.random.default_rng(3)
    good = fat_mapper.plan(fat_tb.random_layer(rng, name="l", **fat_tb.RANDOM_LAYERS[0]), design.config)
    bad = fat_tb.invalid_codes(good, np.random.default_rng(4), n=4)
    assert bad.model["errors"] == 4 and good.model["errors"] == 0
    r = fat_tb.run(design, bad)
    assert r.passed and r.mismatches == 0, (r.summary(), r.extra.get("error"))
    assert r.extra["stats"]["errors"] == 4
    # the checker fails when the model does not expect the errors the RTL counts
    r = fat_tb.run(design, fat_tb.dataclasses.replace(bad, model=good.model))
    assert not r.passed and "'errors': 4" in r.extra["error"], r.extra.get("error")


@pytest.mark.verilator
@pytest.mark.parametrize("engine, rng_seed, wrong", [("phantom", 6, "error_chunk"), ("phantom2d", 2, "error_core")])
def test_phantom_engines_flag_bad_chunks_and_name_the_first(monkeypatch, engine, rng_seed, wrong):
    import importlib
    tb = importlib.import_module(f"cosim.testbenches.{engine}")
    mapper = importlib.import_module(f"rtl.{engine}.mapper")
    design = generate(engine, {})
    plan = mapper.plan(phantom_tb.random_layers(5)[0], design.config)
    r = tb.run_bad_chunks(design, plan, np.random.default_rng(rng_seed))
    want = r.extra["expected_flags"]
    assert want["errors"] == 3
    assert r.passed and r.mismatches == 0, (r.summary(), r.extra.get("error"))
    assert {k: r.extra["stats"][k] for k in want} == want
    # the checker fails when the flags name another chunk (core) than the first bad one
    real = tb.bad_chunks

    def off_by_one(*args, **kw):
        bad, w = real(*args, **kw)
        return bad, dict(w, **{wrong: w[wrong] + 1})

    monkeypatch.setattr(tb, "bad_chunks", off_by_one)
    r = tb.run_bad_chunks(design, plan, np.random.default_rng(rng_seed))
    assert not r.passed and wrong in r.extra["error"], r.extra.get("error")
