"""Phantom-2D mesh engine (phantom2d): configuration, dataflow (assign), mesh words (mapper.plan),
mesh cycle model (mesh_sim), co-simulation on Verilator and Icarus, failing checks, CLI."""

import dataclasses
import gc
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cosim.engines import run_layer
from cosim.testbenches.phantom import random_layer, random_layers
from cosim.testbenches.phantom2d import check_counters, cosim, run
from flows.cli import main
from golden.errors import NotMapped
from golden.nets import digits
from golden.quant import requantize
from rtl.export import generate
from rtl.phantom2d import mapper
from rtl.phantom2d.config import V_BITS, Phantom2DConfig
from rtl.phantom2d.mapper import assign
from rtl.phantom2d.mesh import PhantomMesh
from rtl.phantom2d.model import cycles, mesh_sim
from rtl.phantom.config import MAX_IN_BITS, PhantomConfig
from rtl.phantom.model import cycle_model
from tests.conftest import mutate

MASK64 = (1 << 64) - 1


@pytest.fixture(scope="module")
def design():
    """The default 2x2 mesh (its Verilator and Icarus builds are cached across runs)."""
    return generate("phantom2d", {})


@pytest.fixture(scope="module")
def layers1():
    return {v.name: v for v in random_layers(1)}


def _words(field: np.ndarray) -> list[int]:
    """A payload field as Python integers: (n,) int64 or (n, limbs) uint64 little-endian limbs."""
    if field.ndim == 1:
        return [int(v) & MASK64 for v in field]
    return [sum((int(limb) & MASK64) << (64 * k) for k, limb in enumerate(row)) for row in field]


def _popcounts(field: np.ndarray) -> np.ndarray:
    return np.array([bin(w).count("1") for w in _words(field)], dtype=np.int64)


def _unpack(word: int, bits: int, count: int) -> list[int]:
    vals = [(word >> (bits * j)) & ((1 << bits) - 1) for j in range(count)]
    return [v - (1 << bits) if v >> (bits - 1) else v for v in vals]


# ---- 1. configuration --------------------------------------------------------------------------

@pytest.mark.parametrize("kw, msg", [
    ({"rows": 0}, r"rows must be an integer in \[1, 8\], not 0"),
    ({"cols": 9}, r"cols must be an integer in \[1, 8\], not 9"),
    ({"fifo": 1}, r"fifo must be an integer in \[2, 16\], not 1"),
    ({"fifo": 17}, r"fifo must be an integer in \[2, 16\]"),
    ({"values": 33}, r"values must lie in \[1, chunk=32\], not 33"),
    ({"chunk": 16, "values": 17}, r"values must lie in \[1, chunk=16\]"),
    ({"rows": 2.0}, r"rows must be an integer in \[1, 8\], not 2.0"),
    ({"cols": "2"}, r"cols must be an integer in \[1, 8\], not '2'"),
    ({"rows": True}, r"rows must be an integer"),
    ({"threads": 0}, r"threads must be a positive integer"),
    ({"window": 7}, r"window must lie in \[lanes \+ 1 = 2, 6\]"),
])
def test_config_rejects_bad_values(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Phantom2DConfig(**kw)


def test_config_core_and_layouts():
    cfg = Phantom2DConfig(rows=3, cols=2, threads=3, chunk=24, values=6, window=4, fifo=5, dense=True)
    assert cfg.core == PhantomConfig(threads=3, chunk=24, values=6, window=4, lanes=1, dense=True)
    assert cfg.cores == 6 and cfg.tag_bits == 3 and cfg.lane_bits == 8 + 3 + 1
    out = cfg.out_layout()
    names = [name for name, _ in out]
    assert names == [f"lane{j}_{f}" for j in range(6) for f in ("value", "core", "valid")]  # a lane per core
    assert out.size == cfg.cores * cfg.lane_bits
    for j in range(cfg.cores):  # the valid bit is the top bit of each lane
        assert out[f"lane{j}_valid"].offset == (j + 1) * cfg.lane_bits - 1
    word = dict(iter(cfg.word_layout()))
    assert {f"r{r}c{c}_use" for r in range(3) for c in range(2)} <= set(word)
    assert cfg.in_bits == cfg.word_layout().size
    assert word["r0_svals"].width == cfg.values * V_BITS and word["r2c1_mask"].width == cfg.chunk
    one = Phantom2DConfig(rows=1, cols=1)
    assert one.tag_bits == 1 and [n for n, _ in one.out_layout()] == ["lane0_value", "lane0_core", "lane0_valid"]
    assert Phantom2DConfig(rows=8, cols=8).tag_bits == 6


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")  # the mesh that refused to be built
def test_mesh_rejects_too_wide_input_word():
    cfg = Phantom2DConfig(rows=8, cols=8, chunk=256, values=64)  # every core alone is fine ...
    assert cfg.core.in_bits <= MAX_IN_BITS < cfg.in_bits
    with pytest.raises(ValueError, match=rf"8x8 mesh with chunk 256 and 64 values makes a {cfg.in_bits}-bit "
                                         rf"input word \(at most {MAX_IN_BITS}\)"):
        PhantomMesh(cfg)  # ... the mesh word is not
    gc.collect()


# ---- 2. dataflow and mesh words (no simulator) -------------------------------------------------

def _live(rows_out):
    """[(row, slot, col, position, filter)] over every live slot entry."""
    out = []
    for r, (slots, _) in enumerate(rows_out):
        for s, c in zip(*np.nonzero(slots[:, :, 0] >= 0)):
            out.append((r, int(s), int(c), int(slots[s, c, 0]), int(slots[s, c, 1])))
    return out


ASSIGN_SHAPES = [(5, 9, 2, 2), (7, 13, 3, 2), (3, 4, 2, 4), (4, 1, 2, 3), (6, 5, 1, 1)]  # F, P, rows, cols


@pytest.mark.parametrize("level2", [True, False])
@pytest.mark.parametrize("f_n, positions, rows, cols", ASSIGN_SHAPES)
def test_assign_conv(f_n, positions, rows, cols, level2):
    rng = np.random.default_rng(f_n * 100 + positions)
    wmask = rng.random((f_n, 11)) < rng.uniform(0.1, 0.9, size=(f_n, 1))
    got = assign("conv", wmask, positions, rows, cols, level2)
    assert len(got) == rows and not any(swap for _, swap in got)
    live = _live(got)
    pairs = sorted((p, f) for *_, p, f in live)
    assert pairs == [(p, f) for p in range(positions) for f in range(f_n)]  # each output exactly once
    col_of = {}
    for r, s, c, p, f in live:
        assert col_of.setdefault(f, c) == c  # columns take filters, the same in every row
    for r, (slots, _) in enumerate(got):
        pos = [set(slots[s, :, 0][slots[s, :, 0] >= 0].tolist()) for s in range(slots.shape[0])]
        assert all(len(p) == 1 for p in pos), f"row {r}: a slot mixes positions {pos}"
    row_pos = [sorted({p for r_, *_, p, _ in live if r_ == r}) for r in range(rows)]
    if level2:  # dealt out: every row gets positions / rows, up to one, not in one block
        assert max(map(len, row_pos)) - min(map(len, row_pos)) <= 1
        work = wmask.sum(axis=1)
        load = np.bincount([col_of[f] for f in range(f_n)], weights=work, minlength=cols)
        assert load.max() <= work.sum() / cols + work.max()  # longest work first: greedy bound
        counts = np.bincount([col_of[f] for f in range(f_n)], minlength=cols)
        assert counts.max() - counts.min() <= 1  # ... with at most ceil(F / cols) filters a column
        for r, (slots, _) in enumerate(got):  # each column's filters heaviest first
            for c in range(cols):
                fs = [f for f in slots[:len(slots) // max(1, len(row_pos[r])), c, 1] if f >= 0]
                assert list(work[fs]) == sorted(work[fs], reverse=True)
    else:  # contiguous blocks, in row order
        flat = [p for rp in row_pos for p in rp]
        assert flat == list(range(positions))
        for rp in row_pos:
            assert rp == list(range(rp[0], rp[-1] + 1)) if rp else True
        assert [col_of[f] for f in range(f_n)] == sorted(col_of[f] for f in range(f_n))


@pytest.mark.parametrize("level2", [True, False])
@pytest.mark.parametrize("f_n, positions, rows, cols", ASSIGN_SHAPES)
def test_assign_depthwise(f_n, positions, rows, cols, level2):
    rng = np.random.default_rng(f_n * 7 + positions)
    wmask = rng.random((f_n, 9)) < 0.6
    got = assign("depthwise", wmask, positions, rows, cols, level2)
    assert len(got) == rows and all(swap for _, swap in got)  # rows share a channel's weights
    live = _live(got)
    assert sorted((p, ch) for *_, p, ch in live) == [(p, ch) for p in range(positions) for ch in range(f_n)]
    row_of = {}
    for r, s, c, p, ch in live:
        assert row_of.setdefault(ch, r) == r  # a channel lives on one row
    for r, (slots, _) in enumerate(got):
        for s in range(slots.shape[0]):
            chans = set(slots[s, :, 1][slots[s, :, 0] >= 0].tolist())
            assert len(chans) == 1, f"row {r} slot {s} mixes channels {chans}"
    if level2:  # positions dealt out over the columns, up to one apart
        col_pos = [len({p for _, _, c_, p, _ in live if c_ == c}) for c in range(cols)]
        assert max(col_pos) - min(col_pos) <= 1


@pytest.mark.parametrize("level2", [True, False])
@pytest.mark.parametrize("f_n, images, rows, cols", [(9, 3, 2, 2), (5, 2, 2, 2), (3, 1, 2, 4), (11, 2, 3, 2)])
def test_assign_linear(f_n, images, rows, cols, level2):
    rng = np.random.default_rng(f_n)
    wmask = rng.random((f_n, 40)) < 0.3
    got = assign("linear", wmask, images, rows, cols, level2)
    assert len(got) == rows and not any(swap for _, swap in got)
    live = _live(got)
    assert sorted((n, f) for *_, n, f in live) == [(n, f) for n in range(images) for f in range(f_n)]
    core_of = {}
    for r, s, c, n, f in live:
        assert core_of.setdefault(f, (r, c)) == (r, c)  # every filter on exactly one core
    for r, (slots, _) in enumerate(got):  # every row streams every image, one image per slot
        imgs = [set(slots[s, :, 0][slots[s, :, 0] >= 0].tolist()) for s in range(slots.shape[0])]
        assert all(len(i) == 1 for i in imgs)
    if not level2:
        bins = [core_of[f][0] * cols + core_of[f][1] for f in range(f_n)]
        assert bins == sorted(bins)


def test_assign_rejects_other_kinds():
    with pytest.raises(NotMapped, match="'pool' is not supported by phantom2d"):
        assign("pool", np.ones((2, 3), dtype=bool), 4, 2, 2)


def _plan_layers():
    rng = np.random.default_rng(42)
    return random_layers(2) + [
        random_layer(rng, kind="conv", c=2, h=3, w=3, o=1, k=3, padding=0, name="one-position"),
        random_layer(rng, kind="depthwise", c=1, h=4, w=4, k=3, padding=1, name="one-channel"),
        random_layer(rng, kind="linear", c=150, o=2, n=1, wd=0.9, ad=0.9, name="long-fc"),
    ]


PLAN_CONFIGS = [Phantom2DConfig(), Phantom2DConfig(rows=1, cols=1), Phantom2DConfig(rows=3, cols=2, values=5),
                Phantom2DConfig(rows=2, cols=3, chunk=96, values=7, threads=2)]  # 96: two-limb masks


@pytest.mark.parametrize("cfg", PLAN_CONFIGS, ids=["2x2", "1x1", "3x2-V5", "2x3-CH96-V7"])
def test_plan_mesh_words_decode_to_golden_outputs(cfg):
    """Decode every core's chunks from the packed words (masks, packed values, counts) and
    requantize: each core's outputs equal the tagged expected stream, in order."""
    R, C, V = cfg.rows, cfg.cols, cfg.values
    for vec in _plan_layers():
        for level2 in (True, False):
            plan = mapper.plan(vec, cfg, level2=level2)
            f = plan.fields
            y = vec.y
            assert plan.expected.size == y.size == plan.outputs.sum() == plan.work["outputs"]
            tags = plan.expected >> 8
            assert np.all(np.diff(tags) >= 0) and tags.min() >= 0 and tags.max() < cfg.cores
            assert np.array_equal(np.bincount(tags, minlength=cfg.cores), plan.outputs)
            assert all(len(a) == plan.words for a in f.values())
            accs = []
            for r in range(R):
                valid = f[f"r{r}_valid"] != 0
                scnt = f[f"r{r}_scnt"]
                assert np.array_equal(_popcounts(f[f"r{r}_smask"]), scnt) and scnt.max(initial=0) <= V
                smask, svals = _words(f[f"r{r}_smask"]), _words(f[f"r{r}_svals"])
                for c in range(C):
                    j, p = r * C + c, f"r{r}c{c}_"
                    cnt = f[p + "cnt"]
                    assert np.array_equal(_popcounts(f[p + "mask"]), cnt) and cnt.max(initial=0) <= V
                    use = valid & (f[p + "use"] != 0)
                    assert np.array_equal(plan.sent[j], np.flatnonzero(use))  # the words that carry core j's chunks
                    assert not np.any((f[p + "use"] != 0) & ~valid)
                    cmask, cvals = _words(f[p + "mask"]), _words(f[p + "vals"])
                    useful, lasts, outs, acc = [], [], [], 0
                    for w in np.flatnonzero(use):
                        sv, cv = _unpack(svals[w], V_BITS, V), _unpack(cvals[w], V_BITS, V)
                        assert not any(sv[scnt[w]:]) and not any(cv[cnt[w]:])  # zero-padded
                        wv = sv if f[f"r{r}_swap"][w] else cv
                        assert all(-128 <= v <= 127 for v in wv)  # the core keeps 8 bits of a weight
                        sbits = [b for b in range(cfg.chunk) if smask[w] >> b & 1]
                        cbits = [b for b in range(cfg.chunk) if cmask[w] >> b & 1]
                        both = sorted(set(sbits) & set(cbits))
                        useful.append(len(both))
                        acc += sum(sv[sbits.index(b)] * cv[cbits.index(b)] for b in both)
                        lasts.append(bool(f[p + "last"][w]))
                        if lasts[-1]:
                            acc += int(f[p + "bias"][w])
                            accs.append(acc)
                            q = requantize(torch.tensor([acc]), torch.tensor([int(f[p + "mult"][w])]),
                                           torch.tensor([int(f[p + "shift"][w])]), vec.layer.output_zero_point,
                                           vec.layer.act_min, vec.layer.act_max)
                            outs.append(int(q[0]) & 0xFF)
                            acc = 0
                    assert acc == 0 and useful == plan.useful[j].tolist() and lasts == plan.last[j].tolist()
                    assert outs == (plan.expected[tags == j] & 0xFF).tolist(), (vec.name, level2, j)
            assert sorted(accs) == sorted(vec.acc.ravel().tolist()), vec.name


@pytest.mark.parametrize("cfg", PLAN_CONFIGS, ids=["2x2", "1x1", "3x2-V5", "2x3-CH96-V7"])
def test_plan_mesh_work_sparse_and_dense(cfg):
    dense = dataclasses.replace(cfg, dense=True)
    for vec in _plan_layers():
        sp, de = mapper.plan(vec, cfg), mapper.plan(vec, dense)
        assert sum(int(u.sum()) for u in sp.useful) == sp.work["useful_macs"], vec.name
        assert sum(int(u.sum()) for u in de.useful) == de.work["dense_macs"] == sp.work["dense_macs"]
        assert sp.work["useful_macs"] <= sp.work["dense_macs"]
        # dense mode sends every live part, and at most `values` positions per chunk
        for r in range(dense.rows):
            for c in range(dense.cols):
                p = f"r{r}c{c}_"
                use = de.fields[p + "use"] != 0
                assert np.array_equal(de.fields[p + "cnt"][use], de.fields[f"r{r}_scnt"][use])
                assert de.fields[p + "cnt"].max(initial=0) <= dense.values
        assert cycles(sp)["products"] == sp.work["useful_macs"] and cycles(de)["products"] == de.work["dense_macs"]
        assert cycles(de)["busy"] >= cycles(sp)["busy"]


# ---- 3. mesh cycle model -----------------------------------------------------------------------

def _mesh_sim(plan, cfg):
    return mesh_sim(plan.words, plan.sent, plan.useful, plan.last, cfg)


def test_mesh_sim_sanity():
    for cfg in PLAN_CONFIGS:
        for vec in random_layers(4):
            plan = mapper.plan(vec, cfg)
            m = _mesh_sim(plan, cfg)
            assert m == cycles(plan)  # deterministic, and what the model room gives for the plan
            assert m["products"] == plan.work["useful_macs"]
            assert m["chunks"] == sum(len(u) for u in plan.useful)
            assert m["cycles"] >= plan.words and m["cycles"] > max(m["core_busy"])
            assert m["busy"] == sum(m["core_busy"]) and m["slots"] == cfg.threads * m["busy"]
            assert m["busy"] >= -(-m["products"] // cfg.threads)


def _one_by_one_layers(rng):
    return [random_layer(rng, kind="conv", c=4, h=5, w=5, o=3, padding=0, wd=0.6, ad=1.0, name="c"),
            random_layer(rng, kind="depthwise", c=3, h=6, w=6, wd=0.7, ad=0.6, name="d"),
            random_layer(rng, kind="linear", c=50, o=4, n=2, wd=0.4, ad=0.6, name="l")]


@pytest.mark.parametrize("dense", [True, False])
def test_one_by_one_mesh_is_one_core_plus_a_constant(dense):
    """A 1x1 mesh runs its single core's chunk stream (words without a chunk are dropped);
    the core's input queue and the harness add a constant."""
    cfg = Phantom2DConfig(rows=1, cols=1, dense=dense)
    offsets = {}
    for vec in _one_by_one_layers(np.random.default_rng(5)) + random_layers(3):
        plan = mapper.plan(vec, cfg)
        core = cycle_model(plan.useful[0], plan.last[0], cfg.core)
        m = cycles(plan)
        assert {k: m[k] for k in ("busy", "products", "chunks")} == {k: core[k] for k in ("busy", "products",
                                                                                            "chunks")}
        assert plan.words == len(plan.useful[0]) and (plan.fields["r0c0_use"] != 0).all()
        offsets[vec.name] = m["cycles"] - core["cycles"]
    assert set(offsets.values()) == {3}, offsets  # harness (2) + the core's input queue (1)


# ---- 4. co-simulation: Verilator ---------------------------------------------------------------

@pytest.mark.verilator
def test_cosim_default_set_on_verilator(design):
    results = cosim(design, sim="verilator")
    names = [r.extra["scenario"] for r in results]
    # 8 random layers, the 4 sparse demo layers, rand0 under heavy back-pressure, 5 requant-params
    # layers, requant-halves, dense-exact, rank-sweep, bad chunks, then bad chunks in each of
    # cores 1-3 alone, twice (none stopped early)
    assert len(results) == 28, names
    assert names[12].startswith("rand0-conv (back-pressure")
    assert [n.split(" ")[0] for n in names[13:21]] == ["requant-params"] * 5 + ["requant-halves", "dense-exact",
                                                                                  "rank-sweep"]
    bad = results[21:]
    assert all(n.startswith("bad-chunks") for n in names[21:]) and all(r.extra["stats"]["errors"] == 3 for r in bad)
    assert [r.extra["stats"]["error_core"] for r in bad[1:]] == [2, 2, 3, 3, 4, 4]
    assert all(r.passed for r in results), [(r.extra["scenario"], r.summary()) for r in results if not r.passed]
    assert any("level 2 off" in n for n in names) and any("idle + back-pressure" in n for n in names)
    free = [r for r in results if "back-pressure" not in r.extra["scenario"]]
    assert len(free) >= 6
    for r in free:  # the mesh model is cycle-exact when input and output run free
        assert r.cycles == r.extra["model"]["cycles"], (r.extra["scenario"], r.cycles, r.extra["model"])
        assert r.extra["stats"]["busy"] == r.extra["model"]["busy"]
    for r in results:
        assert r.extra["stats"]["products"] == r.extra["model"]["products"] == r.extra["work"]["useful_macs"]
        assert r.extra["stats"]["errors"] == (3 if any(r is b for b in bad) else 0)
        assert r.outputs == r.extra["work"]["outputs"]


# ---- 5. co-simulation: Icarus ------------------------------------------------------------------

@pytest.mark.icarus
def test_icarus_runs_two_small_layers(design, layers1):
    vec = layers1["rand6-linear"]
    plan = mapper.plan(vec, design.config)
    model = cycles(plan)
    r = run(design, plan, sim="icarus")
    assert r.passed, (r.summary(), r.first_mismatch)
    assert r.cycles == model["cycles"] and r.extra["stats"]["busy"] == model["busy"]
    assert check_counters(r, model) is None

    vec = layers1["rand5-depthwise"]
    plan = mapper.plan(vec, design.config, level2=False)
    model = cycles(plan)
    r = run(design, plan, sim="icarus", seed=3, idle=0.1, stall=0.2)
    assert r.passed, (r.summary(), r.first_mismatch)
    assert r.outputs == plan.expected.size and check_counters(r, model) is None
    assert r.cycles > model["cycles"]  # idle input and back-pressure cost cycles


ODD_MESHES = {"3x1-fifo2": Phantom2DConfig(rows=3, cols=1, fifo=2, threads=2, chunk=12, values=5),
              "2x3-dense": Phantom2DConfig(rows=2, cols=3, dense=True, chunk=8, values=8, threads=3, window=4,
                                           fifo=3)}


@pytest.mark.icarus
@pytest.mark.parametrize("name", list(ODD_MESHES))
def test_odd_meshes_on_icarus(name):
    """Other shapes: one column, three columns, a short queue, dense mode."""
    cfg = ODD_MESHES[name]
    mesh = generate("phantom2d", config=cfg)
    assert mesh.config is cfg and mesh.port("i__payload").width == cfg.in_bits
    layers = random_layers(2)
    for k, vec in enumerate([layers[2], layers[5], layers[7]]):  # conv, depthwise, FC
        plan = mapper.plan(vec, cfg, level2=k != 1)
        model = cycles(plan)
        r = run(mesh, plan, sim="icarus", seed=k)
        assert r.passed, (vec.name, r.summary(), r.first_mismatch)
        assert check_counters(r, model) is None and r.cycles == model["cycles"], (vec.name, r.cycles)
        assert r.extra["stats"]["busy"] == model["busy"]
    vec = layers[1]  # stride-2 conv under idle input and back-pressure
    r = run(mesh, mapper.plan(vec, cfg), sim="icarus", seed=9, idle=0.3, stall=0.5)
    assert r.passed, (vec.name, r.summary(), r.first_mismatch)


# ---- 6. the checks can fail ---------------------------------------------------------------------

def _lane_core_pattern(design, lane: int, core: int) -> str:
    """The generated statement that tags lane ``lane``'s output with core ``core``."""
    fields = {name: (off, width) for name, off, width, _ in design.port("o__payload").fields}
    off, width = fields[f"lane{lane}_core"]
    return rf"(o__payload\[{off + width - 1}:{off}\] = ){width}'h{core:x};"


@pytest.mark.icarus
@pytest.mark.parametrize("what", ["tag", "accumulator"])
def test_mutated_mesh_verilog_fails(design, layers1, what):
    if what == "tag":  # the collector tags core 1's outputs as core 0's
        mutant = mutate(design.verilog, _lane_core_pattern(design, 1, 1), r"\g<1>2'h0;")
    else:  # core 0 subtracts this cycle's products instead of adding them
        mutant = mutate(design.verilog, r"assign (\\\$\d+ ) = \$signed\(acc\) \+", r"assign \1 = $signed(acc) -")
    assert mutant != design.verilog
    vec = layers1["rand6-linear"]
    plan = mapper.plan(vec, design.config)
    assert plan.outputs[0] > 0 and plan.outputs[1] > 0
    good = run(design, plan, sim="icarus")
    bad = run(design, plan, sim="icarus", verilog=mutant)
    assert good.passed and not bad.passed
    assert bad.mismatches > 0 and bad.first_mismatch is not None


@pytest.mark.verilator
@pytest.mark.parametrize("r, c", [(0, 0), (1, 0)])
def test_bad_chunk_is_named_with_its_core(design, layers1, r, c):
    vec = layers1["rand0-conv"]
    plan = mapper.plan(vec, design.config)
    key = f"r{r}c{c}_cnt"
    used = np.flatnonzero((plan.fields[f"r{r}c{c}_use"] != 0) & (plan.fields[f"r{r}_valid"] != 0))
    w = used[4]  # the core's fifth chunk
    plan.fields[key] = plan.fields[key].copy()
    plan.fields[key][w] = (plan.fields[key][w] + 1) % (design.config.values + 1)
    assert plan.fields[key][w] != _popcounts(plan.fields[f"r{r}c{c}_mask"])[w]
    res = run(design, plan)
    core = r * design.config.cols + c
    assert not res.passed
    assert res.extra["stats"]["errors"] == 1, res.extra["stats"]
    assert res.extra["stats"]["error_core"] == core + 1 and res.extra["stats"]["error_chunk"] == 5
    assert f"in chunk 4 of core {core} " in res.extra["error"], res.extra["error"]


@pytest.mark.verilator
def test_check_counters_detects_a_wrong_count(design, layers1):
    vec = layers1["rand2-conv"]
    plan = mapper.plan(vec, design.config)
    model = cycles(plan)
    r = run(design, plan)
    assert r.passed and check_counters(r, model) is None
    model = dict(model, products=model["products"] + 1)
    msg = check_counters(r, model)
    assert msg is not None and msg.startswith("counters ") and "'products'" in msg
    model = dict(model, products=model["products"] - 1, chunks=model["chunks"] - 1)
    assert "'chunks'" in (check_counters(r, model) or "")


# ---- 7. command line ---------------------------------------------------------------------------

@pytest.mark.parametrize("params, needle", [(["rows=0"], "rows must be an integer in [1, 8], not 0"),
                                           (["fifo=1"], "fifo must be an integer in [2, 16], not 1"),
                                           (["cols=zero"], "parameter cols of engine phantom2d must be int"),
                                           (["rows=8", "cols=4", "chunk=64"], "-bit input word (at most 4096)")])
@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")  # the mesh that refused to be built
def test_cli_cosim_rejects_bad_mesh_param(capsys, params, needle):
    if len(params) > 1:  # a valid configuration whose mesh word is too wide (else this would co-simulate)
        assert Phantom2DConfig(**{k: int(v) for k, v in (p.split("=") for p in params)}).in_bits > MAX_IN_BITS
    assert main(["cosim", "phantom2d"] + [a for p in params for a in ("--param", p)]) == 2
    gc.collect()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("nnaccel: error:") and needle in err, err


def test_console_script_bad_mesh_param_has_no_traceback():
    script = Path(sys.executable).with_name("nnaccel")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "flows.cli"]
    r = subprocess.run(cmd + ["cosim", "phantom2d", "--param", "rows=0"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "rows must be an integer in [1, 8], not 0" in r.stderr and not r.stdout


def test_cli_verilog_writes_the_mesh(tmp_path, capsys):
    assert main(["verilog", "phantom2d", "--param", "rows=1", "--param", "cols=3", "-o", str(tmp_path)]) == 0
    v = (tmp_path / "phantom2d.v").read_text()
    assert "module phantom2d(" in v
    assert all(f"core_0_{c} " in v for c in range(3)) and "core_1_0" not in v
    meta = json.loads((tmp_path / "phantom2d.json").read_text())
    assert meta["params"]["rows"] == 1 and meta["params"]["cols"] == 3
    cfg = Phantom2DConfig(rows=1, cols=3)
    ports = {p["name"]: p for p in meta["ports"]}
    assert ports["i__payload"]["width"] == cfg.in_bits and ports["o__payload"]["width"] == cfg.cores * cfg.lane_bits


@pytest.mark.verilator
def test_run_layer_splits_batches_that_do_not_fit(design, monkeypatch):
    """A layer larger than the harness memory runs in batches (split further when a batch's
    words or outputs would not fit); the merged result is exact and its products complete."""
    import cosim.testbenches.phantom2d as p2d
    vec = list(digits.layer_vectors(digits.build("sparse"), 6))[1]
    monkeypatch.setattr(p2d, "capacity", lambda d: 1 << 12)
    r = run_layer(design, vec)
    assert r.passed and r.extra["batches"] >= 2, (r.summary(), r.extra.get("batches"))
    assert r.outputs == vec.y.size
    assert r.extra["stats"]["products"] == mapper.plan(vec, design.config).work["useful_macs"]


# ---- 7. the requantizers' pipeline ---------------------------------------------------------------

FAST_MESH = Phantom2DConfig(rows=1, cols=2, threads=2, chunk=12, values=5, requant_pipeline="fast")


def test_mesh_model_follows_the_requantizer_latency():
    """Every core's requantizers set the mesh's tail: 3 cycles more with "fast"."""
    compact = dataclasses.replace(FAST_MESH, requant_pipeline="compact")
    assert FAST_MESH.core.requant_pipeline == "fast" and FAST_MESH.core.tail - compact.core.tail == 3
    for vec in random_layers(2)[2:6]:
        a, b = cycles(mapper.plan(vec, compact)), cycles(mapper.plan(vec, FAST_MESH))
        assert b["cycles"] - a["cycles"] == 3 and b["busy"] == a["busy"], vec.name


@pytest.mark.verilator
@pytest.mark.slow
def test_fast_requantizer_mesh_is_exact_on_verilator():
    """A 1x2 mesh whose cores have the 8-stage requantizers: bit-exact, cycles and busy
    counts equal to the mesh model's (free-running), counters equal to the model's."""
    mesh = generate("phantom2d", config=FAST_MESH)
    layers = random_layers(2)
    for k, vec in enumerate([layers[2], layers[7]]):  # conv, FC
        plan = mapper.plan(vec, FAST_MESH)
        model = cycles(plan)
        r = run(mesh, plan, sim="verilator", seed=k)
        assert r.passed, (vec.name, r.summary(), r.first_mismatch)
        assert check_counters(r, model) is None and r.cycles == model["cycles"], (vec.name, r.cycles, model["cycles"])
        assert r.extra["stats"]["busy"] == model["busy"]
