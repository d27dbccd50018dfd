"""Winograd engine in Amaranth simulation: transforms, exact division, static widths,
bit-exact tiles; the mapper against the golden direct convolution; config checks."""

import random

import numpy as np
import pytest
import torch
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from golden.conv import conv2d_q
from golden.errors import NotMapped
from golden.layer import layer_vectors_from
from golden.winograd import STAGES, signed_bits, winograd_conv2d_int, winograd_widths, worst_case_input
from rtl.common.simtools import stream_get, stream_put
from rtl.engines import get_engine
from rtl.export import generate
from rtl.winograd import WinogradConfig, WinogradEngine
from rtl.winograd import model
from rtl.winograd import transforms as tf
from rtl.winograd.mapper import map_layer, maps, plan, transform_weights


def _comb_sim(inputs, outputs, cases):
    """Drive ``inputs`` (flat list of signals) with each case; return the outputs' values."""
    m = Module()
    res = []
    outs = [Signal(signed(64), name=f"o{k}") for k in range(len(outputs))]
    m.d.comb += [o.eq(e) for o, e in zip(outs, outputs)]
    sim = Simulator(m)

    async def bench(ctx):
        for case in cases:
            for s, v in zip(inputs, case):
                ctx.set(s, int(v))
            res.append([ctx.get(o) for o in outs])

    sim.add_testbench(bench)
    sim.run()
    return np.array(res, dtype=np.int64)


@pytest.mark.parametrize("m", [2, 4])
def test_input_and_output_transforms_match_matrix_products(m):
    cfg = WinogradConfig(m=m)
    a = cfg.a
    bt, at = np.array(cfg.bt), np.array(cfg.at)
    rng = np.random.default_rng(m)
    d = [[Signal(signed(9), name=f"d{i}{j}") for j in range(a)] for i in range(a)]
    v = tf.right_t(tf.left(cfg.bt, d), cfg.bt)
    cases = np.concatenate([rng.integers(-255, 256, (200, a * a)), np.full((1, a * a), 255),
                            np.full((1, a * a), -255)])
    got = _comb_sim([s for r in d for s in r], [e for r in v for e in r], cases)
    want = np.stack([(bt @ c.reshape(a, a) @ bt.T).ravel() for c in cases])
    assert np.array_equal(got, want)

    mt = [[Signal(signed(40), name=f"m{i}{j}") for j in range(a)] for i in range(a)]
    y = tf.right_t(tf.left(cfg.at, mt), cfg.at)
    cases = rng.integers(-(1 << 38), 1 << 38, (200, a * a))
    got = _comb_sim([s for r in mt for s in r], [e for r in y for e in r], cases)
    want = np.stack([(at @ c.reshape(a, a) @ at.T).ravel() for c in cases])
    assert np.array_equal(got, want)


@pytest.mark.parametrize("m", [2, 4])
def test_exact_division_by_s_squared(m):
    cfg = WinogradConfig(m=m, max_in_channels=1024)
    s2, width = cfg.s ** 2, cfg.bits("Y")
    lo, hi, _ = cfg.widths["Y"]
    rng = random.Random(m)
    qs = [lo, hi, 0, 1, -1, lo + 1, hi - 1] + [rng.randint(lo, hi) for _ in range(300)]
    for q in qs:  # the integer mirror of the hardware
        assert tf.exact_div_int(q * s2, s2, width) == q
    # F(4x4,3x3)'s 576 = 2**6 * 9 takes four shift-adds: two pipeline stages of two each
    assert tf.exact_div_parts(s2, width) == (2 if m == 4 else 1)
    assert cfg.stages[-3:] == (("Y0", "Y", "acc") if m == 4 else ("ATMA", "Y", "acc"))
    z = Signal(signed(cfg.bits("ATMA")))
    got = _comb_sim([z], [tf.exact_div(z, s2, width)], [[q * s2] for q in qs])
    assert got[:, 0].tolist() == qs


def test_weight_transform_is_integral_and_scaled():
    for m in (2, 4):
        cfg = WinogradConfig(m=m)
        w = np.random.default_rng(0).integers(-128, 128, (3, 2, 3, 3))
        u = transform_weights(cfg, w)
        from golden.winograd import TRANSFORMS
        g = np.array([[float(v) for v in r] for r in TRANSFORMS[m][1]])
        assert np.allclose(u, cfg.s ** 2 * np.einsum("ik,ockl,jl->ocij", g, w.astype(float), g))
        lo, hi, bits = cfg.widths["U"]
        assert lo <= u.min() and u.max() <= hi and cfg.in_layout()["u"].shape.elem_shape.elem_shape.width == bits


def _run_engine(cfg, ls, *, idle=0.0, stall=0.0, seed=0, probe_stages=()):
    """Stream a mapped layer through the engine in Amaranth simulation.
    Returns (output beats (n, P, mm), {stage: [values per valid cycle]})."""
    dut = WinogradEngine(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    rng = random.Random(seed)
    got, probes = [], {s: [] for s in probe_stages}
    stage_valid = {**{s: k for k, s in enumerate(cfg.stages)}, "U": 1}
    mm = cfg.m * cfg.m

    async def driver(ctx):
        for k, v in ls.statics.items():
            ctx.set(getattr(dut, k), v)
        for t in range(ls.n_beats):
            pl = {"x": ls.beats["x"][t].tolist(), "u": ls.beats["u"][t].tolist(),
                  **{f: ls.beats[f][t].tolist() for f in ("bias", "mult", "shift")},
                  "first": int(ls.beats["first"][t]), "last": int(ls.beats["last"][t])}
            await stream_put(ctx, dut.i, pl, idle=idle, rng=rng)

    async def monitor(ctx):
        for _ in range(ls.n_out):
            p = await stream_get(ctx, dut.o, stall=stall, rng=rng)
            got.append([[p[q][k] for k in range(mm)] for q in range(cfg.channels)])

    def flat(x):
        return [v for e in x for v in flat(e)] if isinstance(x, list) else [x]

    async def sampler(ctx):
        while True:
            await ctx.tick()
            valid = ctx.get(dut.probes["valid"])
            for s in probe_stages:
                if valid >> stage_valid[s] & 1:
                    probes[s].append([ctx.get(x) for x in flat(dut.probes[s])])

    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    if probe_stages:
        sim.add_testbench(sampler, background=True)
    sim.run()
    return np.array(got, dtype=np.int64), probes


@pytest.mark.parametrize("m,channels", [(2, 3), (4, 2)])
def test_engine_is_bit_exact_with_idle_and_backpressure(m, channels):
    cfg = WinogradConfig(m=m, channels=channels, max_in_channels=8)
    rng = np.random.default_rng(m)
    x = rng.integers(-128, 128, (1, 3, 5, 7))
    w = rng.integers(-128, 128, (channels + 1, 3, 3, 3))
    b = rng.integers(-(1 << 20), 1 << 20, channels + 1)
    mult, sh = rng.integers(1 << 30, 1 << 31, channels + 1), rng.integers(-20, 0, channels + 1)
    ls = map_layer(cfg, x, w, b, -7, mult, sh, 3, -128, 127, padding=1)
    got, _ = _run_engine(cfg, ls, idle=0.3, stall=0.3, seed=m)
    assert got.shape == ls.expected.shape
    bad = np.argwhere(got != ls.expected)
    assert not len(bad), f"first mismatch at {ls.locate(bad[0][0], bad[0][1] * m * m + bad[0][2])}: " \
                         f"expected {ls.expected[tuple(bad[0])]}, got {got[tuple(bad[0])]}"


@pytest.mark.parametrize("m", [2, 4])
def test_static_widths_hold_the_worst_case_inputs(m):
    """For every hardware stage, the worst-case input of the width analysis drives the
    stage register to the analysed extreme (which needs every bit of the register) and
    the register holds the golden value exactly: the widths are tight and sufficient."""
    channels = 3
    cfg = WinogradConfig(m=m, channels=1, max_in_channels=channels)
    widths = winograd_widths(m, channels)
    hw_stages = [s for s in STAGES if s not in ("d", "g", "Gg")]
    for stage in hw_stages:
        x, w, zp = worst_case_input(m, stage, channels)
        ls = map_layer(cfg, x, w, np.zeros(1), zp, [1 << 30], [0], 0, -128, 127, padding=0)
        _, probes = _run_engine(cfg, ls, probe_stages=[stage])
        _, st = winograd_conv2d_int(x, w, torch.zeros(1, dtype=torch.int64), zp, m=m, return_stages=True)
        golden = st[stage].numpy().ravel()
        hw = np.array(probes[stage]).ravel()
        assert np.array_equal(np.sort(hw), np.sort(golden)), f"{stage}: register differs from golden"
        lo, hi, bits = widths[stage]
        assert cfg.bits(stage) == bits == signed_bits(lo, hi)
        peak = max(-lo, hi)
        assert np.abs(hw).max() == peak, f"{stage}: worst case {np.abs(hw).max()} != analysed {peak}"
        assert not (-(1 << (bits - 2)) <= peak < (1 << (bits - 2))), f"{stage}: {bits} bits are not tight"


def test_mapper_matches_golden_direct_convolution():
    rng = np.random.default_rng(7)
    for m in (2, 4):
        for channels in (1, 2, 5):
            cfg = WinogradConfig(m=m, channels=channels)
            for _ in range(4):
                n, c, o = rng.integers(1, 3), rng.integers(1, 9), rng.integers(1, 8)
                h, wd, pad = rng.integers(3, 12), rng.integers(3, 12), int(rng.integers(0, 2))
                x, w = rng.integers(-128, 128, (n, c, h, wd)), rng.integers(-128, 128, (o, c, 3, 3))
                b, zp = rng.integers(-9999, 9999, o), int(rng.integers(-128, 128))
                mult, sh = rng.integers(1 << 30, 1 << 31, o), rng.integers(-16, 0, o)
                ls = map_layer(cfg, x, w, b, zp, mult, sh, -5, -128, 127, pad)
                y = conv2d_q(x, w, b, zp, mult, sh, -5, padding=pad).numpy()
                assert np.array_equal(ls.y_ext[:, :o, :y.shape[2], :y.shape[3]], y)
                th, tw = -(-y.shape[2] // m), -(-y.shape[3] // m)
                assert ls.n_beats == n * -(-o // channels) * th * tw * c
                assert ls.beats["first"].sum() == ls.beats["last"].sum() == ls.n_out
                assert ls.useful.sum() == y.size  # every output once, surplus lanes excluded


def test_plan_keeps_layer_and_config_and_the_model_counts_its_beats():
    rng = np.random.default_rng(3)
    vec = layer_vectors_from(name="c", kind="conv", x=rng.integers(-128, 128, (2, 3, 7, 5)),
                             w=rng.integers(-127, 128, (3, 3, 3, 3)), bias=rng.integers(-999, 999, 3),
                             input_zero_point=-5, real_multipliers=[0.004, 0.002, 0.003], output_zero_point=7,
                             padding=1)
    cfg = WinogradConfig(m=2, channels=2)
    ls = plan(vec, cfg)
    assert ls.layer == vec.layer and ls.config == cfg
    assert ls.n_beats == 2 * 2 * 4 * 3 * 3  # N, groups, tile rows, tile columns, input channels
    assert np.array_equal(ls.y_ext[:, :3, :7, :5], vec.y)
    assert model.cycles(ls)["cycles"] == ls.n_beats + cfg.latency + 2
    assert model.cycles(ls)["beats"] == ls.n_beats and 0 < model.cycles(ls)["groups"] <= ls.n_beats
    assert model.cycles(ls, runs=3)["cycles"] == ls.n_beats + 3 * (cfg.latency + 2)
    assert get_engine("winograd").cycles(ls) == model.cycles(ls)


@pytest.mark.parametrize("kernel,stride,why", [(5, 1, "kernel 5x5, stride 1"), (3, 2, "kernel 3x3, stride 2")])
def test_unsupported_layers_are_not_mapped(kernel, stride, why):
    engine = get_engine("winograd")
    vec = layer_vectors_from(name="conv_bad", kind="conv", x=np.zeros((1, 2, 8, 8), np.int8),
                             w=np.zeros((4, 2, kernel, kernel), np.int8), bias=np.zeros(4), input_zero_point=0,
                             mult=np.zeros(4), shift=np.zeros(4), output_zero_point=0, stride=stride, padding=1)
    with pytest.raises(NotMapped, match=rf"^not supported by winograd: conv_bad \({why}\)$"):
        engine.plan(vec)
    assert maps(vec, WinogradConfig()) == f"not supported by winograd: conv_bad ({why})"
    if stride == 1:  # the mapper refuses the kernel too (it has no stride: it maps stride 1 only)
        with pytest.raises(ValueError, match=rf"not supported by winograd: conv_bad \({why}\)"):
            map_layer(WinogradConfig(), vec.x, vec.w, np.zeros(4), 0, np.zeros(4), np.zeros(4), 0,
                      padding=1, name="conv_bad")
    fc = layer_vectors_from(name="fc", kind="linear", x=np.zeros((1, 512)), w=np.zeros((10, 512)),
                            bias=np.zeros(10), input_zero_point=0, mult=np.zeros(10), shift=np.zeros(10),
                            output_zero_point=0)
    with pytest.raises(NotMapped, match=r"^not supported by winograd: fc \(linear layer"):
        engine.plan(fc)


def test_too_many_input_channels_are_refused():
    cfg = WinogradConfig(max_in_channels=4)
    with pytest.raises(ValueError, match=r"not supported by winograd: big \(5 input channels > max_in_channels 4\)"):
        map_layer(cfg, np.zeros((1, 5, 4, 4)), np.zeros((1, 5, 3, 3)), [0], 0, [0], [0], 0, name="big")
    big = layer_vectors_from(name="big", kind="conv", x=np.zeros((1, 5, 4, 4)), w=np.zeros((1, 5, 3, 3)), bias=[0],
                             input_zero_point=0, mult=[0], shift=[0], output_zero_point=0)
    assert maps(big, cfg) == "not supported by winograd: big (5 input channels > max_in_channels 4)"
    assert maps(big, WinogradConfig()) is None


@pytest.mark.parametrize("params,msg", [({"m": "3"}, "m must be 2 or 4"), ({"channels": "0"}, "channels must be"),
                                        ({"max_in_channels": "0"}, "max_in_channels must be")])
def test_bad_parameters_are_named(params, msg):
    with pytest.raises(ValueError, match=msg):
        generate("winograd", params)


def test_generated_design_reads_back_its_config():
    d = generate("winograd", {"m": "4", "channels": "1"})
    assert d.config == WinogradConfig(m=4, channels=1)
    meta = d.meta()
    assert meta["latency"] == 14 and meta["params"]["m"] == 4  # 9 transform stages (two for the division) + 5
    assert d.port("o__payload").width == 16 * 8
    assert {p.name for p in d.ports} >= {"input_zero_point", "zero_point", "act_min", "act_max"}
