"""The Winograd co-simulation suite's ``requant-params`` corner can fail: each hand-made
mutant of one of the engine's requantizers below passes the random layers, the demo
net's convolutions and the chained run, and ``requant-params`` kills it; and the corner
reaches what it claims, in every requantizer of the engine. docs/mutate.md explains it."""

import re

import numpy as np
import pytest

from cosim import mutate as mech
from cosim.testbenches import requant as requant_tb
from cosim.testbenches import winograd as wino_tb
from flows.mutate import config_for
from golden.quant import INT32_MAX, INT32_MIN, SHIFT_MAX, SHIFT_MIN
from rtl.export import generate
from tests.conftest import mutate


@pytest.fixture(scope="module")
def design():
    return generate("winograd", config=config_for("winograd"))


def in_module(verilog: str, module: str, pattern: str, repl: str) -> str:
    """``verilog`` with ``pattern`` replaced once inside module ``module`` only (the
    engine has one requantizer module per lane, ``winograd.requant_P_K``: a mutant in
    lane (1, 3) is missed by a vector that reaches lane (0, 0) only)."""
    head = re.search(rf"^module \\{re.escape(module)} \(", verilog, re.M)
    assert head, f"no module {module}"
    end = verilog.index("\nendmodule", head.start())
    return verilog[:head.start()] + mutate(verilog[head.start():end], pattern, repl) + verilog[end:]


# (name, requantizer lane, pattern, replacement). The random layers shift left by 1 at
# most, clamp at 127, keep multipliers in [2**30, 2**31) with accumulators far from the
# int32 limits, and land a product near a half of the high multiply almost never.
REQUANT_MUTANTS = [
    # the clamp ignores the sign of act_max: only a negative act_max shows it
    ("act-max-sign", "winograd.requant_1_3", r"\$signed\(y\) > \$signed\(act_max\);",
     "$signed(y) > $signed({ 1'h0, act_max[6:0] });"),
    # left shifts of 16 and more lose 16: only a left shift beyond 15 shows it
    ("left-shift-bit-4", "winograd.requant_0_1", r"(= \\\$\d+  \? )i__payload\[68:64\] : 5'h00;",
     r"\g<1>{ 1'h0, i__payload[67:64] } : 5'h00;"),
    # bit 12 of the multiplier lost on its way into the multiply: moves a TFLite multiplier's
    # product by far less than an output step
    ("mult-bit-12", "winograd.requant_1_0", r"(\\\$\d+  = )i__payload\[63:32\];",
     r"\g<1>{ i__payload[63:45], 1'h0, i__payload[43:32] };"),
    # the high multiply's truncation adds 2**14 to a non-negative sum: a product up to 2**14
    # below a half rounds up (Phantom's survivor #97, docs/mutate.md)
    ("round-up-near-half", "winograd.requant_0_3", r"(\\\$\d+  \? )32'd2147483647 : 32'd0;",
     r"\g<1>32'd2147483647 : 32'd16384;"),
    # the saturation detector blind to bit 27 of x: x = INT32_MIN ^ 2**27 with mult
    # INT32_MIN saturates
    ("saturation-near-miss", "winograd.requant_1_2", r"shift_x == 32'd2147483648;",
     "{ shift_x[31:28], 1'h0, shift_x[26:0] } == 32'd2147483648;"),
]


@pytest.mark.icarus
@pytest.mark.parametrize("name,module,pattern,repl", REQUANT_MUTANTS, ids=[m[0] for m in REQUANT_MUTANTS])
def test_requant_params_kills_a_mutant_the_other_scenarios_miss(name, module, pattern, repl, design):
    r = mech.run_mutant(design, in_module(design.verilog, module, pattern, repl), sim="icarus")
    # requant-params runs last: every scenario before it passed
    assert r["verdict"] == "killed" and r["scenario"].startswith("requant-params"), (name, r)


def accumulators(ls) -> np.ndarray:
    """The int32 accumulators (beats, channels, m*m) the engine forms from a plan of one
    input channel, from its beats alone: V = B^T d B, Y = A^T (U * V) A / s**2, + bias."""
    cfg = ls.config
    a, m = cfg.a, cfg.m
    bt, at = np.array(cfg.bt, dtype=np.int64), np.array(cfg.at, dtype=np.int64)
    assert ls.beats["first"].all() and ls.beats["last"].all()
    d = ls.beats["x"].reshape(-1, a, a) - ls.statics["input_zero_point"]
    v = bt @ d @ bt.T  # (n, a, a)
    uv = ls.beats["u"].reshape(-1, cfg.channels, a, a) * v[:, None]
    y = at @ uv @ at.T  # (n, P, m, m)
    assert (y % cfg.s ** 2 == 0).all()
    return (y // cfg.s ** 2).reshape(-1, cfg.channels, m * m) + ls.beats["bias"][:, :, None]


@pytest.mark.parametrize("params", [{}, {"m": "4", "channels": "1"}], ids=["F2x2", "F4x4"])
def test_requant_params_reach_the_parameter_extremes_in_every_lane(params):
    """Every shift from -31 to 30; multipliers INT32_MIN, INT32_MAX, 0, -1 and every 2**k;
    accumulators at both int32 limits (biases there, with no weights); u = -255 and 255;
    each bit of the zero point and of both clamp bounds at both values; and every vector
    in every requantizer: all lanes of an output beat share one accumulator, multiplier
    and shift, so all expect the same int8 value."""
    cfg = config_for("winograd", params)
    runs = wino_tb.requant_params_layers(cfg, 1)
    assert [name.split(" ")[0] for name, _ in runs] == ["requant-params"] * 5
    layers = [ls for _, made in runs for ls in (made if isinstance(made, list) else [made])]
    first = runs[0][1]
    mult = np.concatenate([ls.beats["mult"] for ls in first])
    shift = np.concatenate([ls.beats["shift"] for ls in first])
    assert set(range(SHIFT_MIN, SHIFT_MAX + 1)) <= set(shift.ravel().tolist())
    assert {INT32_MIN, INT32_MAX, 0, -1} | {1 << k for k in range(31)} <= set(mult.ravel().tolist())
    acc = np.concatenate([accumulators(ls) for ls in first])
    assert acc.min() == INT32_MIN and acc.max() == INT32_MAX
    want = requant_tb.params_vectors(np.random.default_rng(1))  # the first draws of the scenario's rng
    assert np.array_equal(accumulators(first[0])[:, 0, 0], want["acc"])
    assert np.array_equal(first[0].beats["mult"][:, 0], want["mult"])
    for ls in layers:
        P = cfg.channels
        assert (ls.beats["mult"] == ls.beats["mult"][:, :1]).all() and ls.beats["mult"].shape[1] == P
        assert (ls.beats["shift"] == ls.beats["shift"][:, :1]).all()
        a = accumulators(ls)
        assert (a == a[:, :1, :1]).all() and (a >= INT32_MIN).all() and (a <= INT32_MAX).all()
        assert (ls.expected == ls.expected[:, :1, :1]).all() and ls.useful.all()
        assert ls.n_beats == ls.n_out  # one tile, one input channel: one beat per vector
    us = {int(ls.beats["x"][0, 0]) - ls.statics["input_zero_point"] for ls in layers}
    assert us == {-255, 255}
    for field in ("zero_point", "act_min", "act_max"):
        bits = [ls.statics[field] & 0xFF for ls in layers]
        assert all(any(b >> k & 1 for b in bits) and not all(b >> k & 1 for b in bits) for k in range(8)), field
    outs = np.concatenate([ls.expected[:, 0, 0] for ls in layers[2:]])
    assert outs.min() == -128 and outs.max() == 127
