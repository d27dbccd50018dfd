"""The Phantom and Phantom-2D co-simulation suites' corners and counter checks can fail
(issue 15): on the configuration ``nnaccel mutate`` uses (:data:`flows.mutate.SMALL`),
each corner scenario (``requant-params``, ``dense-exact``) kills a hand-made mutant the
random and demo layers before it let through, and the mesh's counter check kills
mutants of counters nothing compared before (``stat_slots``, ``stat_error_core``).
docs/mutate.md explains the corners."""

import dataclasses
import re

import numpy as np
import pytest

from cosim import mutate as mech
from cosim.testbenches import phantom as phantom_tb
from cosim.testbenches import phantom2d as mesh_tb
from flows.mutate import config_for
from golden.quant import INT32_MAX, INT32_MIN, SHIFT_MAX, SHIFT_MIN
from rtl.export import generate
from rtl.phantom import mapper
from tests.conftest import mutate


@pytest.fixture(scope="module")
def phantom_design():
    return generate("phantom", config=config_for("phantom"))


@pytest.fixture(scope="module")
def mesh_design():
    return generate("phantom2d", config=config_for("phantom2d"))


# Mutants of the requantizer (the first core's or lane's; the same Verilog in the core and
# the mesh): (name, pattern, replacement). The random and demo layers never shift left,
# always clamp at 127, never bring an accumulator near INT32_MIN, and their multipliers'
# low bits move no output by a whole step.
REQUANT_MUTANTS = [
    ("no-left-shift", r"(assign \\\$\d+  = )\$signed\(i__payload\[69:64\]\) > \$signed\(1'h0\);", r"\g<1>1'h0;"),
    ("act-max-sign", r"\$signed\(y\) > \$signed\(act_max\);", "$signed(y) > $signed({ 1'h0, act_max[6:0] });"),
    ("saturation-near-miss", r"shift_x == 32'd2147483648;",
     "{ shift_x[31:28], 1'h0, shift_x[26:0] } == 32'd2147483648;"),
    ("mult-bit-12", r"(\\\$\d+  = )i__payload\[63:32\];", r"\g<1>{ i__payload[63:45], 1'h0, i__payload[43:32] };"),
    # the high multiply's truncation adds 2**14 to a non-negative sum: a product up to 2**14
    # below a half rounds up (survivor #97 of `nnaccel mutate phantom`, 2026-12-06)
    ("round-up-near-half", r"(assign \\\$\d+  = \\\$\d+  \? )32'd2147483647 : 32'd0;",
     r"\g<1>32'd2147483647 : 32'd16384;"),
]


def _killed_by(design, text: str, scenario: str) -> None:
    r = mech.run_mutant(design, text, sim="icarus")
    # the corners run after the random and demo layers: those passed
    assert r["verdict"] == "killed" and r["scenario"].startswith(scenario), r


@pytest.mark.icarus
@pytest.mark.parametrize("name,pattern,repl", REQUANT_MUTANTS, ids=[m[0] for m in REQUANT_MUTANTS])
def test_phantom_requant_params_kills_a_mutant_the_random_layers_miss(name, pattern, repl, phantom_design):
    _killed_by(phantom_design, mutate(phantom_design.verilog, pattern, repl), "requant-params")


@pytest.mark.icarus
@pytest.mark.parametrize("name,pattern,repl", REQUANT_MUTANTS[:2], ids=[m[0] for m in REQUANT_MUTANTS[:2]])
def test_mesh_requant_params_kills_a_mutant_the_random_layers_miss(name, pattern, repl, mesh_design):
    _killed_by(mesh_design, mutate(mesh_design.verilog, pattern, repl), "requant-params")


# The weight mask's popcount drops the top bit of its upper half's count: wrong only when
# the chunk's top 8 positions all hold a weight (values = 8), which dense-exact's first
# run of every output has and the random and demo layers never do.
FULL_HALF = (r"assign wpop0 = (\\\$\d+ ) \+ (\\\$\d+ );", r"assign wpop0 = \g<1> + { 1'h0, \g<2>[2:0] };")


@pytest.mark.icarus
@pytest.mark.parametrize("engine", ["phantom", "phantom2d"])
def test_dense_exact_kills_a_mutant_the_random_layers_miss(engine, phantom_design, mesh_design):
    design = phantom_design if engine == "phantom" else mesh_design
    _killed_by(design, mutate(design.verilog, *FULL_HALF), "dense-exact")


# Counters of the mesh that only the strengthened check compares: (name, pattern,
# replacement, the counter named in the failure). Outputs, products, chunks, errors,
# cycles and busy stay right.
MESH_COUNTER_MUTANTS = [
    # core 0 offers one slot per busy cycle instead of threads (2)
    ("slots-one-thread", r"(assign \\\$\d+  = stat_slots \+ )2'h2;", r"\g<1>2'h1;", "slots"),
    # the last core is named in error_core whenever no lower core has a bad chunk (even with none)
    ("error-core-stuck", r"if \((\\\$\d+ )\) begin\n(\s+)stat_error_core = 32'd4;",
     r"if (1'h1) begin\n\g<2>stat_error_core = 32'd4;", "error_core"),
]


@pytest.mark.icarus
@pytest.mark.parametrize("name,pattern,repl,counter", MESH_COUNTER_MUTANTS, ids=[m[0] for m in MESH_COUNTER_MUTANTS])
def test_mesh_counter_check_kills_counter_mutants(name, pattern, repl, counter, mesh_design):
    text = mutate(mesh_design.verilog, pattern, repl)
    r = mech.run_mutant(mesh_design, text, sim="icarus")
    assert r["verdict"] == "killed" and counter in (r["detail"] or ""), r


def test_requant_params_reach_the_parameter_extremes():
    """Every shift from -31 to 30; multipliers INT32_MIN, INT32_MAX, 0, every 2**k; biases
    at both int32 limits; u down to -255 and up to 255; each bit of the zero point and the
    clamp bounds at both values across the layers."""
    layers = phantom_tb.requant_params_layers(1)
    first = layers[0]
    assert set(range(SHIFT_MIN, SHIFT_MAX + 1)) <= set(first.shift.tolist())
    assert {INT32_MIN, INT32_MAX, 0, -1} | {1 << k for k in range(31)} <= set(first.mult.tolist())
    assert first.bias.min() == INT32_MIN and first.bias.max() == INT32_MAX
    us = [vec.x - vec.layer.input_zero_point for vec in layers]
    assert min(u.min() for u in us) == -255 and max(u.max() for u in us) == 255
    for field in ("output_zero_point", "act_min", "act_max"):
        bits = [getattr(vec.layer, field) & 0xFF for vec in layers]
        assert all(any(b >> k & 1 for b in bits) and not all(b >> k & 1 for b in bits) for k in range(8)), field


@pytest.mark.parametrize("engine", ["phantom", "phantom2d"])
def test_dense_exact_chunks_are_full(engine):
    """Every chunk of dense-exact carries exactly ``values`` non-zeros of each operand over
    ``chunk`` positions (its top position among them); in the dense mapping, masks of all
    ones over ``values`` positions."""
    cfg = config_for(engine)
    core = cfg if engine == "phantom" else cfg.core
    vec = phantom_tb.dense_exact_layer(cfg, np.random.default_rng(1))
    plan = mapper.plan(vec, core)
    f = plan.fields
    assert (f["wcnt"] == core.values).all() and (f["acnt"] == core.values).all()
    assert any(int(m) >> (core.chunk - 1) & 1 for m in f["wmask"])
    assert (plan.useful > 0).all() and plan.useful.max() == core.values
    dense = mapper.plan(vec, dataclasses.replace(core, dense=True))
    ones = (1 << core.values) - 1
    assert all(int(m) == ones for m in dense.fields["wmask"]) and (dense.useful == core.values).all()
    if engine == "phantom":
        names = [name for name, _ in phantom_tb.corner_plans(cfg, 1)]
        want = ["requant-params"] * 5 + ["dense-exact"] * 2 + ["rank-sweep", "region-sweep"]
        assert [n.split(" ")[0] for n in names] == want


# The select of thread 1's weight offset drops bit 2 at window slot 2, position 14: wrong
# only when thread 1 takes that position in the last slot (behind a chunk left over from
# the word before) with 4 or more weights below it, which rank-sweep makes and the
# scenarios before it do not. (Thread 0 has its own AND on the same field: the pattern
# names thread 1's one-hot bit.)
def rank_select_mutant(verilog: str) -> str:
    bits = re.search(r"assign one2_1 = \{ ([^}]*) \};", verilog)[1].split(" , ")
    sel = re.escape(bits[len(bits) - 1 - 14].strip())
    return mutate(verilog, rf"(assign \\\$\d+  = woff2\[74:70\]) & \{{ ({sel} ), \2, \2, \2, \2 \}};",
                  r"\g<1> & 5'h1b & { \g<2>, \g<2>, \g<2>, \g<2>, \g<2> };")


@pytest.mark.icarus
def test_rank_sweep_kills_a_mutant_the_other_scenarios_miss(phantom_design):
    _killed_by(phantom_design, rank_select_mutant(phantom_design.verilog), "rank-sweep")


@pytest.mark.parametrize("engine_cfg", ["small", "default"])
def test_rank_sweep_puts_every_thread_on_every_reachable_position(engine_cfg):
    """Per the exact cycle model, rank-sweep's chunk stream puts thread k on position q of
    window slot s for every (k, s, q) a free-running core can reach by input words alone
    (thread 0 past slot ``lanes`` - 1 needs a stalled core or lanes + 1 closing outputs,
    thread k in slot 0 takes a rank of at least k); its outputs are the accumulators
    themselves (multiplier 1, |acc| <= 127), and no chunk is cut short."""
    from rtl.phantom.config import PhantomConfig
    cfg = config_for("phantom") if engine_cfg == "small" else PhantomConfig()
    vec = phantom_tb.rank_sweep_layer(cfg, np.random.default_rng(1))
    plan = mapper.plan(vec, cfg)
    T, L, NL, M = cfg.threads, cfg.window, cfg.lanes, cfg.chunk
    made = phantom_tb.thread_positions(plan)
    want = {(k, s, q) for k in range(T) for s in range(L) for q in range(M)
            if (s < NL or k >= 1) and (s > 0 or q >= k)}
    assert want <= made, sorted(want - made)[:10]
    acc = (vec.x - vec.layer.input_zero_point) @ vec.w.T + vec.bias
    assert (np.abs(acc - vec.bias) <= cfg.values).all() and (vec.y.ravel() == acc.ravel()).all()
    assert (plan.fields["wcnt"] <= cfg.values).all() and (plan.useful > 0).any()


# ---- Phantom-2D: the survivors of `nnaccel mutate phantom2d` (2026-12-06, docs/mutate.md) ----
# Each is a survivor's mutation re-applied by text edit to the generated Verilog (in the
# first core, or in the survivor's core where the first core's copy is already killed by
# the older scenarios, or in the mesh), with the scenario that now kills it; the scenarios
# before it pass.

def _edits(verilog: str, edits: list, module: str | None = None) -> str:
    """``edits`` [(pattern, replacement)] applied in turn, each to its first match (after the
    header of ``module`` when given)."""
    for pattern, repl in edits:
        if module:
            pattern, repl = rf"(module \\{re.escape(module)} (?s:(?!\nendmodule).)*?){pattern}", r"\g<1>" + repl
        verilog = mutate(verilog, pattern, repl)
    return verilog


def slot2_thread0_rank_bit3(verilog: str) -> str:
    """#62: thread 0's rank in window slot 2 with bit 3 inverted (thread 0 gets past two
    emptied slots only behind an empty chunk that does not close, which no layer's stream
    has). The compares read the subtraction, not the ``rank2_0`` wire."""
    sub = re.escape(re.search(r"assign rank2_0 = (\\\$\d+ )\[4:0\];", verilog)[1])
    return mutate(verilog, rf"(assign {sub} = )([^;]*);", r"\g<1>(\g<2>) ^ 7'h08;")


MESH_SURVIVORS = [
    ("slot2-thread0-rank-bit3", slot2_thread0_rank_bit3, "rank-sweep"),
    # #10: slot 2's packed weight 6 read with bit 0 inverted (both threads' selects)
    ("slot2-weight6-bit0", lambda v: _edits(v, [(r"\{ wval2, wval1, wval0 \} >>",
                                                 "{ wval2 ^ 128'h1000000000000, wval1, wval0 } >>")] * 2),
     "rank-sweep"),
    # #26: a stalled core's count of slot 2's useful products left flips bit 1 each stall
    # cycle, in the last core as the survivor (core 0 stalls under rand5's back-pressure)
    ("stall-slot2-count-bit1", lambda v: _edits(v, [(r"stall \? \{ 1'h0, ucnt2 \} :",
                                                     "stall ? { 1'h0, ucnt2 ^ { 3'h0, ~ucnt2[4], 1'h0 } } :")] * 3,
                                                 "phantom2d.core_1_1"),
     "rand0-conv (back-pressure"),
    # #9: the rounding mask's bit 8 XOR its bit 23 (right shifts of 24 and more lose bit 8)
    ("round-mask-bit8", lambda v: _edits(v, [(r"(assign \\\$\d+  = high_h & )(\\\$\d+ )\[31:0\];",
                                              r"\g<1>(\g<2>[31:0] ^ { 23'h0, \g<2>[23], 8'h0 });")]),
     "requant-halves"),
    # #67: the last core's error_chunk with bit 16 flipped when its bit 3 is 0
    ("last-core-error-chunk-bit16", lambda v: _edits(v, [(r"stat_error_chunk = (\\stat_error_chunk\$\d+ );",
                                                          r"stat_error_chunk = \g<1> ^ { 15'h0, ~\g<1>[3], 16'h0 };")]),
     "bad-chunks (core 3 alone"),
    # #84 of the run on the final suite: the last core's requantizer never saturates the
    # high multiply (INT32_MIN x INT32_MIN); requant-params sent that vector to one core
    # only until every vector went to every core
    ("last-core-no-saturation", lambda v: _edits(v, [(r" = mul_sat \?", " = 1'h0 ?")],
                                                 "phantom2d.core_1_1.rq0"),
     "requant-params zp=-3"),
]


@pytest.mark.parametrize("engine_cfg", ["small", "default"])
def test_mesh_requant_params_sends_every_vector_through_every_core(engine_cfg):
    """The mesh mapper deals a linear layer's channels to cores longest work first; with
    one weight per channel (equal work) channel i goes to core i mod cores, so each
    requant-params and requant-halves vector, repeated once per core, meets every core's
    requantizer."""
    from rtl.phantom2d import mapper as mesh_mapper
    from rtl.phantom2d.config import Phantom2DConfig
    cfg = config_for("phantom2d") if engine_cfg == "small" else Phantom2DConfig()
    n = cfg.cores
    halves = [p.layer for name, p in mesh_tb.corner_plans(cfg, 1) if name.startswith("requant-halves")]
    assert len(halves) == 1
    for vec in phantom_tb.requant_params_layers(1, cores=n) + halves:
        wm = vec.w.reshape(len(vec.w), -1) != 0
        assert (wm.sum(axis=1) == 1).all()
        core = np.full(len(wm), -1)
        for r, (slots, _) in enumerate(mesh_mapper.assign("linear", wm, 1, cfg.rows, cfg.cols)):
            for c in range(cfg.cols):
                f = slots[:, c, 1]
                core[f[f >= 0]] = r * cfg.cols + c
        assert (core.reshape(-1, n) == np.arange(n)).all(), vec.name
        assert (vec.mult.reshape(-1, n) == vec.mult[::n, None]).all()


# Survivors of `nnaccel mutate phantom` (the RTL with the issue pipeline, 2026-12-06), their
# mutation re-applied to the generated Verilog: (name, pattern, replacement, the scenario
# that now kills it). docs/mutate.md judges all sixteen.
PIPELINE_SURVIVORS = [
    # #8: the second requantizer lane's v = prod + nudge with bit 30 inverted: the high
    # multiply's truncation toward zero slips only for a negative v whose bits below 31
    # are 0 or 2**30 (truncation_vectors), which requant-params sent to lane 0 alone
    ("rq1-v-bit-30", r"(?s)(module \\phantom\.rq1 .*?assign v = )\$signed\(mul_prod\) \+ \$signed\((\\\$\d+ )\);",
     r"\g<1>($signed(mul_prod) + $signed(\g<2>)) ^ 65'sh0040000000;", "requant-params"),
    # #13: slot 2 never in region 1: its product goes to the next output when the cycle
    # closes two outputs with slot 2 the second
    ("region1-slot2", r"assign region1_2 = valid2 & (\\\$\d+ );", "assign region1_2 = 1'h0;", "region-sweep"),
    # #54: thread 0's product loses bit 5 when it counts for the output after those closed
    # (thread 0 behind `lanes` closing chunks)
    ("carry-prod-bit-5", r"(assign \\\$\d+  = \\\$\d+  \? 17'h00000 : )prod2_0;",
     r"\g<1>{ prod2_0[16:6], 1'h0, prod2_0[4:0] };", "region-sweep"),
    # #38: the first bad chunk's index in input lane 0, stat_chunks + 1, loses bit 4
    ("error-index-lane0-bit-4", r"(assign \\\$\d+  = )(\\\$\d+ ) \+ 1'h0;",
     r"\g<1>{ \g<2>[32:5], 1'h0, \g<2>[3:0] } + 1'h0;", "bad-chunks (lane 0"),
]


@pytest.mark.icarus
@pytest.mark.parametrize("name,edit,scenario", MESH_SURVIVORS, ids=[m[0] for m in MESH_SURVIVORS])
def test_mesh_scenarios_kill_the_survivors_of_the_mutation_run(name, edit, scenario, mesh_design):
    _killed_by(mesh_design, edit(mesh_design.verilog), scenario)


@pytest.mark.parametrize("engine_cfg", ["small", "default"])
def test_mesh_rank_sweep_puts_every_thread_on_every_reachable_position(engine_cfg):
    """Per the cycle-exact mesh model, the mesh's rank-sweep puts thread k of every core on
    position q of window slot s for every (k, s, q) but thread k in slot 0 below position k
    (its rank there is at least k) -- thread 0 in slot 2 included, which no layer's stream
    reaches: the mapper sends no empty part that does not close its output. Outputs are
    acc + bias, never clamped, and every chunk holds at most ``values`` of each operand."""
    from rtl.phantom2d import mapper as mesh_mapper
    from rtl.phantom2d.config import Phantom2DConfig
    cfg = config_for("phantom2d") if engine_cfg == "small" else Phantom2DConfig()
    T, L, M, V = cfg.threads, cfg.window, cfg.chunk, cfg.values
    plan = mesh_tb.rank_sweep_plan(cfg, np.random.default_rng(1))
    want = {(k, s, q) for k in range(T) for s in range(L) for q in range(M) if s > 0 or q >= k}
    for j, made in enumerate(mesh_tb.core_positions(plan)):
        assert want <= made, (j, sorted(want - made)[:10])
    f = plan.fields
    assert (f["r0_scnt"] <= V).all() and (f["r0c0_cnt"] <= V).all() and (f["r0c0_use"] == 0).any()
    y = (plan.expected & 0xFF) - ((plan.expected & 0x80) << 1)
    assert np.abs(y).max() < 127 and len(plan.expected) == plan.work["outputs"]
    for vec in phantom_tb.random_layers(1):
        p = mesh_mapper.plan(vec, cfg)
        assert all(((u > 0) | la).all() for u, la in zip(p.useful, p.last))
        assert not any(k == 0 and s >= 2 for made in mesh_tb.core_positions(p) for k, s, _ in made)


def test_bit_half_vectors_set_every_remainder_bit_beside_the_half():
    """requant-halves: for every right shift e of 2..31 and remainder bit j below e - 1, an
    x (acc / 2, mult 2**30) of each sign whose remainder mod 2**e is the half with bit j set
    (just above it) and with bits j..e - 2 set (just below it), within int32."""
    from cosim.testbenches import requant as rq
    v = rq.bit_half_vectors()
    assert (v["mult"] == 1 << 30).all() and (v["acc"] % 2 == 0).all()
    made = set()
    for acc, shift in zip(v["acc"].tolist(), v["shift"].tolist()):
        e, x = -shift, acc // 2
        rem = x % (1 << e)
        made.add((e, rem - (1 << (e - 1)), x > 0))
    for e in range(2, 32):
        for j in range(e - 1):
            for pos in (True, False):
                got = {d for ee, d, p in made if (ee, p) == (e, pos) and abs(d) == 1 << j}
                # at e = 31 one of the two leaves int32 (|2x| > 2**31)
                assert got == {1 << j, -(1 << j)} or (e == 31 and len(got) == 1), (e, j, pos, got)


def test_mesh_bad_chunks_alone_name_each_core_and_chunk():
    """The error path in one core alone: that core and its chunk ``first`` are what the
    flags must name, with alternating-bit chunk numbers in both phases."""
    cfg = config_for("phantom2d")
    plan = mesh_tb.mapper.plan(phantom_tb.random_layers(1)[0], cfg)
    rng = np.random.default_rng(2)
    for j in range(1, cfg.cores):
        for number in (0b101010, 0b010101):  # the flag's chunk number, from 1
            bad, want = mesh_tb.bad_chunks(plan, rng, only=j, first=number - 1)
            assert want == {"errors": 3, "error_core": j + 1, "error_chunk": number}
            key = f"r{j // cfg.cols}c{j % cfg.cols}_cnt"
            changed = np.flatnonzero(bad.fields[key] != plan.fields[key])
            assert changed[0] == plan.sent[j][number - 1] and len(changed) == 3


@pytest.mark.icarus
@pytest.mark.parametrize("name,pattern,repl,scenario", PIPELINE_SURVIVORS, ids=[m[0] for m in PIPELINE_SURVIVORS])
def test_phantom_survivors_killed_by_the_new_corners(name, pattern, repl, scenario, phantom_design):
    text = mutate(phantom_design.verilog, pattern, repl)
    cfg = phantom_design.config
    if scenario == "requant-params":  # the vectors in lane 0 only (before) let it through
        for vec in phantom_tb.requant_params_layers(1):
            r = phantom_tb.run(phantom_design, mapper.plan(vec, cfg), sim="icarus", verilog=text)
            assert r.passed, (vec.name, r.summary())
    if scenario.startswith("bad-chunks"):  # the random bad chunks (before) let it through
        plan = mapper.plan(phantom_tb.random_layers(1)[0], cfg)
        r = phantom_tb.run_bad_chunks(phantom_design, plan, np.random.default_rng(1), sim="icarus", verilog=text)
        assert r.passed, r.extra.get("error")
    _killed_by(phantom_design, text, scenario)


@pytest.mark.parametrize("engine_cfg", ["small", "default"])
def test_requant_params_reach_every_lane(engine_cfg):
    """Per the exact cycle model, requant-params' output i leaves through requantizer lane
    i mod lanes, and each vector fills ``lanes`` consecutive outputs: every vector reaches
    every lane."""
    from rtl.phantom.config import PhantomConfig
    cfg = config_for("phantom") if engine_cfg == "small" else PhantomConfig()
    plans = phantom_tb.corner_plans(cfg, 1)[:5]
    for name, plan in plans:
        assert name.startswith("requant-params")
        lanes = phantom_tb.output_lanes(plan)
        assert lanes == [i % cfg.lanes for i in range(len(plan.last))], name
        acc = plan.layer.bias + (plan.layer.x[0] - plan.layer.layer.input_zero_point) @ plan.layer.w.T
        for v in (acc, plan.layer.mult, plan.layer.shift):
            group = np.asarray(v).reshape(-1, cfg.lanes)
            assert (group == group[:, :1]).all(), name


def test_region_sweep_reaches_what_the_other_scenarios_miss():
    """On the mutation configuration, per the cycle model, region-sweep puts thread 0 behind
    ``lanes`` closing chunks and a thread in slot 2 behind one closing chunk in a cycle that
    closes two, three times or more each; no scenario before it does the latter (the
    former only the demo's conv1, a few times); its outputs are the accumulators."""
    from golden.nets import digits
    cfg = config_for("phantom")
    rare = [("first", cfg.lanes), ("take", 2, 1, True)]
    name, plan = phantom_tb.corner_plans(cfg, 1)[-1]
    assert name.startswith("region-sweep")
    events = phantom_tb.window_replay(plan.useful, plan.last, cfg)[1]
    assert all(events[e] >= 3 for e in rare), events
    before = [p for _, p in phantom_tb.corner_plans(cfg, 1)[:-1]]
    before += [mapper.plan(v, cfg) for v in phantom_tb.random_layers(1) + list(digits.layer_vectors(
        digits.build("sparse"), 1))]
    for p in before:
        seen = phantom_tb.window_replay(p.useful, p.last, cfg)[1]
        assert not any(seen[e] for e in rare[1:]), p.layer.name
    vec = plan.layer
    acc = (vec.x - vec.layer.input_zero_point) @ vec.w.T + vec.bias
    assert (np.abs(acc) <= 90).all() and (vec.y.ravel() == acc.ravel()).all()
