"""Phantom fast cycle model (rtl.phantom.model) and Phantom-2D mesh model (rtl.phantom2d.model):
agreement with the exact (RTL-equal) models, chunk cutting, balancing levels, the network study
(cosim.benches.phantom)."""

import dataclasses

import numpy as np
import pytest

from cosim.benches.phantom import net_study, synthetic_filters, synthetic_masks
from cosim.testbenches.phantom import random_layers
from golden.nets import digits, zoo
from rtl.phantom import mapper, model
from rtl.phantom2d import mapper as mesh_mapper, model as mesh_model
from rtl.phantom2d.config import Phantom2DConfig
from rtl.phantom2d.mapper import lwf
from rtl.phantom2d.model import dense_layer, mesh_layer
from rtl.phantom.config import PhantomConfig
from rtl.phantom.mapper import cut_chunks
from rtl.phantom.model import core_layer, masks_from_vectors

STUDY = Phantom2DConfig(rows=4, cols=4, chunk=256, values=64)  # the mesh of the VGG16 / MobileNet study


def _layers():
    return random_layers(5) + list(digits.layer_vectors(digits.build("sparse"), 2))


@pytest.mark.parametrize("dense", [False, True])
def test_fast_model_equals_exact_model_when_every_position_fits(dense):
    """One core, unlimited budget: the sampled model streams exactly what the mapper streams."""
    cfg = PhantomConfig(dense=dense)
    for vec in _layers():
        exact = model.cycles(mapper.plan(vec, cfg))["cycles"]
        fast = core_layer(masks_from_vectors(vec), PhantomConfig(), budget=10**9)
        got = fast["dense_cycles"] if dense else fast["cycles"]
        if dense:  # steady-state rate: exact up to the pipeline fill of one position
            assert abs(got - exact) <= max(2, 0.01 * exact), (vec.name, got, exact)
        else:
            assert got == exact, (vec.name, got, exact)


def test_fast_model_sampled_within_two_percent_of_exact():
    cfg = PhantomConfig()
    for vec in list(digits.layer_vectors(digits.build("sparse"), 4)):
        exact = model.cycles(mapper.plan(vec, cfg))["cycles"]
        fast = core_layer(masks_from_vectors(vec), cfg, budget=4000)["cycles"]
        assert abs(fast - exact) / exact <= 0.02, (vec.name, fast, exact)


@pytest.mark.parametrize("cfg", [Phantom2DConfig(), STUDY], ids=["2x2", "4x4"])
def test_mesh_model_equals_exact_mesh_model_when_every_position_fits(cfg):
    """Unlimited budget: the fast mesh model runs the exact mesh model (equal to the mesh
    RTL) on the whole layer; the dense model is within a few cycles."""
    for vec in _layers():
        lm = masks_from_vectors(vec)
        for level2 in (True, False):
            exact = mesh_model.cycles(mesh_mapper.plan(vec, cfg, level2=level2))
            fast = mesh_layer(lm, cfg, level2=level2, budget=10**9)
            assert fast["cycles"] == exact["cycles"], (vec.name, level2, fast["cycles"], exact["cycles"])
            assert fast["imbalance"] == pytest.approx(exact["imbalance"])
        dense = mesh_model.cycles(mesh_mapper.plan(vec, dataclasses.replace(cfg, dense=True), level2=False))["cycles"]
        assert abs(dense_layer(lm, cfg) - dense) <= max(3, 0.01 * dense), (vec.name, dense_layer(lm, cfg), dense)


def test_mesh_model_sampled_within_two_percent_of_exact():
    """Sampled positions (the study's budget) against the whole layer, on synthetic layers
    at VGG-like densities; the whole-layer runs are the exact mesh model."""
    layers = [dict(name="c", kind="conv", c=64, h=12, w=12, o=128, k=3, stride=1, padding=1),
              dict(name="dw", kind="depthwise", c=128, o=128, h=16, w=16, k=3, stride=1, padding=1)]
    for i, layer in enumerate(layers):
        lm = synthetic_masks(np.random.default_rng(i), layer, 0.3, 0.5, cv=0.4)
        exact = mesh_layer(lm, STUDY, budget=10**12)
        fast = mesh_layer(lm, STUDY, budget=4000)
        assert fast["sampled_positions"] < lm.positions and exact["sampled_positions"] == lm.positions
        assert abs(fast["cycles"] - exact["cycles"]) / exact["cycles"] <= 0.02, (layer["name"], fast, exact)


def test_cut_chunks_respects_limits_and_is_greedy():
    rng = np.random.default_rng(3)
    cfg = PhantomConfig(chunk=16, values=5)
    w, a = rng.random((40, 101)) < 0.4, rng.random((40, 101)) < 0.7
    rows, s0, e = cut_chunks(w, a, cfg)
    for r, lo, hi in zip(rows, s0, e):
        assert 0 < hi - lo <= cfg.chunk and w[r, lo:hi].sum() <= cfg.values and a[r, lo:hi].sum() <= cfg.values
        if hi < w.shape[1]:  # one more position would break a limit
            assert hi - lo == cfg.chunk or w[r, lo:hi + 1].sum() > cfg.values or a[r, lo:hi + 1].sum() > cfg.values
    # chunks tile every row in order
    for r in range(w.shape[0]):
        sel = rows == r
        assert s0[sel][0] == 0 and e[sel][-1] == w.shape[1] and np.array_equal(s0[sel][1:], e[sel][:-1])


def test_longest_work_first_balances_better_than_blocks():
    rng = np.random.default_rng(0)
    layer = dict(name="l", kind="conv", c=64, h=14, w=14, o=64, k=3, stride=1, padding=1)
    lm = synthetic_masks(rng, layer, 0.3, 0.5, cv=0.8)
    cfg = Phantom2DConfig(rows=2, cols=4, chunk=256, values=64)
    on, off = (mesh_layer(lm, cfg, level2=lv, budget=3000) for lv in (True, False))
    assert on["imbalance"] < off["imbalance"] and on["cycles"] < off["cycles"]
    assert on["static_cycles"] > on["cycles"]  # level 1 off: static threads are slower
    work = rng.integers(1, 100, size=50).astype(float)
    load = np.bincount(lwf(work, 4), weights=work, minlength=4)
    assert load.max() <= work.sum() / 4 + work.max()  # greedy bound


def test_synthetic_filters_hit_the_density():
    rng = np.random.default_rng(1)
    for d, cv in ((0.3, 0.4), (0.05, 0.8), (1.0, 0.4)):
        w = synthetic_filters(rng, 512, 600, d, cv)
        assert abs(w.mean() - d) < 0.02
        per = w.mean(axis=1)
        assert (per.std() / per.mean() if d < 1 else 0) == pytest.approx(cv if d < 1 else 0, abs=0.1)


def test_net_study_covers_every_layer():
    r = net_study("mobilenet_v1", Phantom2DConfig(rows=2, cols=2, chunk=256, values=64), budget=800)
    assert [row["layer"] for row in r["layers"]] == [la["name"] for la in zoo.layers("mobilenet_v1")]
    s = r["summary"]
    assert s["total_macs"] == sum(zoo.macs(la) for la in zoo.layers("mobilenet_v1"))
    assert s["speedup_both_off"] <= s["speedup_level1_off"] <= s["speedup"] * 1.001
    for row in r["layers"]:
        assert row["cycles"] <= row["dense_cycles"] * 1.001 and row["imbalance"] >= 1.0
