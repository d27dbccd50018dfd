"""The co-simulation suites' corner scenarios can fail: each kills a hand-made mutant
that the random stimulus alone lets through (the survivors of ``nnaccel mutate`` they
were written for, docs/mutate.md)."""

import time

import numpy as np
import pytest

from cosim import mutate as mech
from cosim.stream import run_stream
from cosim.testbenches import fat as fat_tb
from cosim.testbenches import requant as requant_tb
from rtl.export import generate
from rtl.fat import mapper
from tests.conftest import mutate

pytestmark = pytest.mark.icarus

# (name, pattern, replacement, the scenario that must kill it)
REQUANT_MUTANTS = [
    # the saturation detector ignores bit 27 of x: x = INT32_MIN ^ 2**27 with mult INT32_MIN
    # saturates (seen in int8 after a right shift of 24 or more)
    ("saturation-near-miss", r"shift_x == 32'd2147483648;",
     "{ shift_x[31:28], 1'h0, shift_x[26:0] } == 32'd2147483648;",
     "full-range"),
    # the negative product's nudge 1 - 2**30 off by one: only a * b = 2**30 - 1 (mod 2**31) shows it
    ("nudge-off-by-one", r"33'h1c0000001;", "33'h1c0000000;", "full-range"),
    # the clamp ignores the sign of act_max: only a negative act_max shows it
    ("act-max-sign", r"\$signed\(y\) > \$signed\(act_max\);", "$signed(y) > $signed({ 1'h0, act_max[6:0] });",
     "statics zp=-128 [-128, -91]"),
    # zero point bit 1 tied to 0 (the base scenarios' zero points -3 and -20 both have it 0)
    ("zero-point-bit1", r"\$signed\(round_r\) \+ \$signed\(zero_point\);",
     "$signed(round_r) + $signed({ zero_point[7:2], 1'h0, zero_point[0] });", "statics zp=2 [19, 127]"),
    # act_max's bit 0 tied to 1 (survivor #33): only an even act_max with an output of act_max + 1 shows it
    ("act-max-bit0", r"\$signed\(y\) > \$signed\(act_max\);", "$signed(y) > $signed({ act_max[7:1], 1'h1 });",
     "statics zp=-1 [-127, 126]"),
    # the positive nudge off by 2**24 (survivor #53): only a product within 2**24 below a half shows it,
    # and only at a shift that keeps the one-step slip in int8
    ("nudge-bit-24", r"33'h040000000 :", "33'h041000000 :", "statics zp=-1 [-127, 126]"),
    # the high multiply's truncation toward zero blind to bit 3 of v = prod + nudge (Winograd's
    # survivor #33): only a negative v of exactly t * 2**31 + 8 shows it (truncation_vectors)
    ("truncation-bit-3", r"(= )\$signed\(v\) \+ \$signed\(\{ 1'h0, ",
     r"\g<1>$signed({ v[64:4], 1'h0, v[2:0] }) + $signed({ 1'h0, ", "full-range"),
    # bit 2 of v inverted where bit 50 is clear (Winograd's survivor #11): only a product of
    # 2**50 or more with v = t * 2**31 (+ 4), t on a tie of the right shift, shows it
    ("truncation-bit-2-wide", r"(= )\$signed\(v\) \+ \$signed\(\{ 1'h0, ",
     r"\g<1>$signed({ v[64:3], v[2] ^ ~v[50], v[1:0] }) + $signed({ 1'h0, ", "full-range"),
]


def _random_only_passes(design, text: str) -> bool:
    """The mutant against the first base scenario's random vectors alone."""
    sc = requant_tb.SCENARIOS[0]
    vec = requant_tb.random_vectors(np.random.default_rng(7), 2000)
    t0 = time.time()
    try:
        return run_stream(design, vec, sc.statics(), requant_tb.expected(vec, sc), sim="icarus", verilog=text,
                          depth_log2=requant_tb.DEPTH_LOG2).passed
    finally:
        mech.forget(design, text, "icarus", since=t0)


@pytest.mark.parametrize("name,pattern,repl,scenario", REQUANT_MUTANTS, ids=[m[0] for m in REQUANT_MUTANTS])
def test_requant_corner_kills_a_mutant_random_vectors_miss(name, pattern, repl, scenario, requant_design):
    text = mutate(requant_design.verilog, pattern, repl)
    assert _random_only_passes(requant_design, text), f"{name}: random vectors already kill it"
    r = mech.run_mutant(requant_design, text, sim="icarus", vectors=200)
    assert r["verdict"] == "killed" and r["scenario"].startswith(scenario), (name, r)


@pytest.fixture(scope="module")
def fat_design():
    return generate("fat", {})


FAT_MUTANTS = [
    # the SACU issues weight 15 whatever cnt says: codes above cnt are no longer ignored
    ("cnt-ignored-for-weight-15", r"(assign \\\$\d+  = )i__payload\[42:35\] > 4'hf;", r"\g<1>1'h1;",
     "partial-words"),
    # the requantizer never shifts left (FAT's other layers all have multipliers below 1)
    ("no-left-shift", r"(assign \\\$\d+  = )\$signed\(i__payload\[69:64\]\) > \$signed\(1'h0\);", r"\g<1>1'h0;",
     "left-shift"),
    # bit 12 of the READ's multiplier lost on its way to the requantizer (a low multiplier
    # bit moves the random layers' outputs by far less than one)
    ("mult-bit-12", r"(\[63:32\] )= em_params\[63:32\];", r"\g<1>= { em_params[63:45], 1'h0, em_params[43:32] };",
     "read-params"),
    # the block RAM's bypass from the write two cycles older never taken: only a READ right
    # after a LOAD of its first row reads a row the array has not yet written
    ("no-bypass-from-older-write", r"assign acc_hit_q = [^;]*;", "assign acc_hit_q = 1'h0;", "bypass"),
    # the operand port's bypass never taken: only an operand that overlaps the accumulator
    # its own steps write reads a row written a cycle before
    ("no-operand-bypass", r"assign op_hit_w = [^;]*;", "assign op_hit_w = 1'h0;", "alias"),
    # the SACU takes weight 10 whatever cnt says: only a word with cnt <= 10 and a non-zero
    # code in slot 10 shows it (the suite's partial words have cnt 11)
    ("cnt-ignored-for-weight-10", r"(assign \\\$\d+  = )i__payload\[42:35\] > 4'h9;", r"\g<1>1'h1;", "slots"),
    # the saturation detector blind to bit 27 of the accumulator (FAT's layers never READ an
    # accumulator of INT32_MIN with the multiplier INT32_MIN)
    ("saturation-near-miss", r"shift_x == 32'd2147483648;",
     "{ shift_x[31:28], 1'h0, shift_x[26:0] } == 32'd2147483648;", "requant-params"),
    # the error adder's sum loses bits 2 and up: a word with 4 or more invalid codes is miscounted
    # (invalid-codes puts at most 3 in a word, slots 1)
    ("error-sum-two-bits", r"(assign \\\$\d+  = stat_errors \+ \\\$\d+) ;", r"\g<1> [1:0] ;", "error-words"),
]


@pytest.mark.parametrize("name,pattern,repl,scenario", FAT_MUTANTS, ids=[m[0] for m in FAT_MUTANTS])
def test_fat_corner_kills_a_mutant_the_random_layers_miss(name, pattern, repl, scenario, fat_design):
    text = mutate(fat_design.verilog, pattern, repl)
    r = mech.run_mutant(fat_design, text, sim="icarus")
    # the corner scenarios run after the random layers: those passed
    assert r["verdict"] == "killed" and r["scenario"].startswith(scenario), (name, r)


def test_fat_corner_layers_reach_their_corners(fat_design):
    """full-array fills every column and splits the reduction over nearly every row;
    left-shift has left shifts and outputs inside its clamp; partial-words has partial words."""
    cfg = fat_design.config
    by_name = {spec["name"]: fat_tb.random_layer(np.random.default_rng(1), **spec) for spec in fat_tb.CORNER_LAYERS}
    full = mapper.plan(by_name["full-array"], cfg)
    assert full.tiles["k_tiles"] > 1 and full.tiles["positions"] % cfg.cols == 0
    assert full.cmds["addr"].max() >= cfg.rows - 32
    left = by_name["left-shift"]
    y = left.y
    assert (left.shift > 0).all() and ((y > left.layer.act_min) & (y < left.layer.act_max)).mean() > 0.5
    p = mapper.plan(fat_tb.random_layer(np.random.default_rng(1), **fat_tb.RANDOM_LAYERS[0]), cfg)
    assert fat_tb.partial_words(p, np.random.default_rng(1)).cmds["data"][:, 0].tolist() != \
        p.cmds["data"][:, 0].tolist()


def test_fat_hand_made_streams_reach_their_corners(fat_design):
    """bypass READs each accumulator right after LOADing its row 0 and LOADs every row from
    rows - 43 to the last; slots has every pair of non-zero weights, an invalid code in each
    slot, each cnt with garbage above, several slot addresses and every column read; and
    requant-params carries the saturating product and every shift."""
    from rtl.fat.config import Code, Op
    cfg = fat_design.config
    W = cfg.word_weights
    by = fat_tb.bypass_plan(cfg, np.random.default_rng(1))
    op, addr = by.cmds["op"], by.cmds["addr"]
    reads = np.flatnonzero(op == Op.READ.value)
    assert all(op[i - 1] == Op.LOAD.value and addr[i - 1] == addr[i] for i in reads)
    assert set(range(cfg.rows - 43, cfg.rows)) <= set(addr[op == Op.LOAD.value].tolist())
    sl = fat_tb.slots_plan(cfg, np.random.default_rng(1))
    words = [(int(c), [(int(d) >> (2 * j)) & 3 for j in range(W)])
             for o, c, d in zip(sl.cmds["op"], sl.cmds["cnt"], sl.cmds["data"][:, 0]) if o == Op.WEIGHTS.value]
    live = {tuple(j for j in range(c) if codes[j] in (Code.PLUS.value, Code.MINUS.value)) for c, codes in words}
    assert all((a, b) in live for a in range(W) for b in range(a + 1, W))
    assert all(any(codes[s] == Code.INVALID.value and s < c for c, codes in words) for s in range(W))
    assert {c for c, _ in words} == set(range(W + 1))
    assert set(sl.cmds["addr"][sl.cmds["op"] == Op.WEIGHTS.value].tolist()) == set(fat_tb.SLOT_BASES)
    assert (sl.cmds["aux"][sl.cmds["op"] == Op.READ.value] == cfg.cols).all() and len(sl.expected) > 0
    rq = fat_tb.requant_plan(cfg, np.random.default_rng(1))
    d = rq.cmds["data"]
    v = [int(a) | (int(b) << 64) for a, b in d[rq.cmds["op"] == Op.READ.value]]  # {bias, mult, shift}
    bias = [((x & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000 for x in v]
    mult = [(((x >> 32) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000 for x in v]
    shift = {(((x >> 64) & 0x3F) ^ 0x20) - 0x20 for x in v}
    assert (-(1 << 31), -(1 << 31)) in set(zip(bias, mult)) and shift == set(range(-31, 31))


def test_fat_error_words_reach_their_corners(fat_design):
    """error-words: for every k = 0..W a word with exactly its first k codes invalid (so each
    partial sum of the error adder takes each of its values), stat_errors past 2**16, READ
    column counts that fall in every bit of the count (and a READ of none), a clamp with
    act_min's bits 6:5 set and a negative act_max; slots: a lone -1 in each slot (slot 15's
    code as a word's lowest). Cheap: a few thousand cycles."""
    from rtl.fat.config import Code, Op
    cfg = fat_design.config
    W, C = cfg.word_weights, cfg.cols
    p = fat_tb.error_words_plan(cfg, np.random.default_rng(1))
    op, cnt, data, aux = p.cmds["op"], p.cmds["cnt"], p.cmds["data"][:, 0], p.cmds["aux"]
    weights = [[(int(d) >> (2 * j)) & 3 for j in range(int(c))] for o, c, d in zip(op, cnt, data)
               if o == Op.WEIGHTS.value]
    lead = [next((j for j, c in enumerate(w) if c != Code.INVALID.value), len(w)) for w in weights]
    assert all(w.count(Code.INVALID.value) == k and len(w) == W for w, k in zip(weights, lead))
    assert set(lead) == set(range(W + 1)) and p.model["errors"] >= 1 << 16
    assert not any(c in (Code.PLUS.value, Code.MINUS.value) for w in weights for c in w)  # nothing issued
    cols = aux[op == Op.READ.value].tolist()
    assert 0 in cols and all(c <= C for c in cols)
    assert all(any(a >> b & 1 and not c >> b & 1 for a, c in zip(cols, cols[1:])) for b in range(C.bit_length()))
    st = fat_tb.ERROR_STATICS
    assert st["act_min"] & 0x60 == 0x60 and st["act_max"] < 0 and st["act_min"] <= st["act_max"]
    assert len(p.expected) == sum(cols) and p.model["cycles"] < 6000
    sl = fat_tb.slots_plan(cfg, np.random.default_rng(1))
    lone = {tuple(((int(d) >> (2 * j)) & 3) for j in range(W)) for o, d in zip(sl.cmds["op"], sl.cmds["data"][:, 0])
            if o == Op.WEIGHTS.value}
    for s_ in range(W):
        for code in (Code.PLUS.value, Code.MINUS.value):
            assert tuple(code if j == s_ else Code.ZERO.value for j in range(W)) in lone, (s_, code)
