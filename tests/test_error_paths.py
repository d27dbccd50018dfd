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
from rtl.phantom import mapper as phantom_mapper


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
def test_phantom_flags_bad_chunks_and_names_the_first(monkeypatch):
    design = generate("phantom", {})
    plan = phantom_mapper.plan(phantom_tb.random_layers(5)[0], design.config)
    r = phantom_tb.run_bad_chunks(design, plan, np.random.default_rng(6))
    want = r.extra["expected_flags"]
    assert want["errors"] == 3
    assert r.passed and r.mismatches == 0, (r.summary(), r.extra.get("error"))
    assert {k: r.extra["stats"][k] for k in want} == want
    # the checker fails when the flag names another chunk than the first bad one
    real = phantom_tb.bad_chunks

    def off_by_one(*args, **kw):
        bad, w = real(*args, **kw)
        return bad, dict(w, error_chunk=w["error_chunk"] + 1)

    monkeypatch.setattr(phantom_tb, "bad_chunks", off_by_one)
    r = phantom_tb.run_bad_chunks(design, plan, np.random.default_rng(6))
    assert not r.passed and "counter error_chunk" in r.extra["error"], r.extra.get("error")


@pytest.mark.verilator
def test_phantom2d_flags_bad_chunks_naming_core_and_chunk(monkeypatch):
    import cosim.testbenches.phantom2d as mesh_tb
    from rtl.phantom2d import mapper as mesh_mapper
    design = generate("phantom2d", {})
    plan = mesh_mapper.plan(phantom_tb.random_layers(5)[0], design.config)
    r = mesh_tb.run_bad_chunks(design, plan, np.random.default_rng(2))
    want = r.extra["expected_flags"]
    assert r.passed and r.mismatches == 0, (r.summary(), r.extra.get("error"))
    assert {k: r.extra["stats"][k] for k in want} == want and want["errors"] == 3
    real = mesh_tb.bad_chunks

    def other_core(*args, **kw):
        bad, w = real(*args, **kw)
        return bad, dict(w, error_core=w["error_core"] + 1)

    monkeypatch.setattr(mesh_tb, "bad_chunks", other_core)
    r = mesh_tb.run_bad_chunks(design, plan, np.random.default_rng(2))
    assert not r.passed and "error_core" in r.extra["error"], r.extra.get("error")
