"""Mutation testing (`nnaccel mutate`): mutant generation with source locations, a
mutant the requantizer's checker must kill, the equivalence checker on an obviously
equivalent mutant and on a killing one, the CLI's refusals and a small run end to end
(resumed). Icarus: a mutant is a fresh build, and Icarus builds in about a second."""

from __future__ import annotations

import json

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cosim import mutate as mech
from flows.cli import main
from rtl.engines import get_engine
from rtl.export import generate


@pytest.fixture(scope="module")
def requant():
    """The requantizer's design and its prepared RTLIL."""
    design = generate("requant")
    return design, mech.prepare(get_engine("requant").build(design.config), design.top)


def test_mutations_are_listed_with_amaranth_source_lines(requant):
    design, il = requant
    ms = mech.mutations(il, 12, seed=3)
    assert len(ms) == 12 and [m.id for m in ms] == list(range(1, 13))
    for m in ms:
        assert m.command.startswith("mutate -mode ") and m.mode in mech.MODES, m.command
    located = [m for m in ms if m.location and m.location.startswith("rtl/requant/")]
    assert len(located) >= 8, [m.src for m in ms]  # traced back to the Python lines
    assert all(int(m.location.rsplit(":", 1)[1]) > 0 for m in located)
    # the same seed lists the same mutations; the flow's Verilog keeps the top and its ports
    assert [m.command for m in mech.mutations(il, 12, seed=3)] == [m.command for m in ms]
    control = mech.verilog(il, design.top)
    assert mech.ports(control, design.top) == mech.ports(design.verilog, design.top)


@pytest.mark.icarus
def test_control_passes_and_a_bad_mutant_of_the_requantizer_is_killed(requant):
    design, il = requant
    control = mech.run_mutant(design, mech.verilog(il, design.top), sim="icarus", vectors=200, keep_build=True)
    assert control["verdict"] == "survived", control
    (bad,) = mech.mutations(il, 1, seed=1, only={"mode": "inv", "wire": "o__payload"})
    r = mech.run_mutant(design, mech.verilog(il, design.top, bad.command), sim="icarus", vectors=200)
    assert r["verdict"] == "killed", (bad.command, r)
    assert r["scenario"] and "mismatches" in r["detail"], r
    # the equivalence checker: the unmutated design is equivalent, the killing mutant is not proved so
    assert mech.equivalence(il, design.top, None)["result"] == "equivalent"
    assert mech.equivalence(il, design.top, bad.command, rounds=1)["result"] == "unproven"


class Truncated(wiring.Component):
    """o <= (a + b)[:4] through a named 8-bit sum: bits 4..7 of the sum are never seen."""

    def __init__(self):
        super().__init__({"a": In(8), "b": In(8), "o": Out(4)})

    def elaborate(self, platform):
        m = Module()
        s = Signal(8)
        m.d.comb += s.eq(self.a + self.b)
        m.d.sync += self.o.eq(s[:4])
        return m


def test_equivalence_check_sets_aside_a_mutant_that_cannot_change_outputs():
    il = mech.prepare(Truncated(), "top")
    (dead,) = mech.mutations(il, 1, only={"mode": "inv", "wire": "s", "wirebit": 6})
    (live,) = mech.mutations(il, 1, only={"mode": "inv", "wire": "s", "wirebit": 1})
    assert mech.equivalence(il, "top", dead.command)["result"] == "equivalent", dead.command
    r = mech.equivalence(il, "top", live.command)
    assert r["result"] == "unproven" and "o" in r["detail"], (live.command, r)


class Stored(wiring.Component):
    """A 4 x 8 memory written with w_data + 1 (through the named 9-bit ``d``), read
    combinationally into a register: ``d``'s bit 8 is never stored."""

    def __init__(self):
        super().__init__({"w_en": In(1), "w_addr": In(2), "w_data": In(8), "r_addr": In(2), "o": Out(8)})

    def elaborate(self, platform):
        from amaranth.lib.memory import Memory
        m = Module()
        m.submodules.mem = mem = Memory(shape=8, depth=4, init=[])
        wp, rp = mem.write_port(), mem.read_port(domain="comb")
        d = Signal(9)
        m.d.comb += [d.eq(self.w_data + 1), wp.en.eq(self.w_en), wp.addr.eq(self.w_addr), wp.data.eq(d[:8]),
                     rp.addr.eq(self.r_addr)]
        m.d.sync += self.o.eq(rp.data)
        return m


def test_equivalence_check_cuts_a_memory_soundly():
    """The memory (no SAT model) is cut out of the check only as one cell shared by both
    sides, its inputs compared: a mutant that changes what is stored is never called
    equivalent, one that changes a bit that is never stored is."""
    il = mech.prepare(Stored(), "top")
    assert "cell $mem_v2 " in il
    (stored,) = mech.mutations(il, 1, only={"mode": "inv", "wire": "d", "wirebit": 3})
    (dropped,) = mech.mutations(il, 1, only={"mode": "inv", "wire": "d", "wirebit": 8})
    assert mech.equivalence(il, "top", None)["result"] == "equivalent"
    assert mech.equivalence(il, "top", dropped.command)["result"] == "equivalent", dropped.command
    r = mech.equivalence(il, "top", stored.command)
    assert r["result"] == "unproven", (stored.command, r)


@pytest.mark.parametrize("argv, words", [
    (["mutate", "aid"], "invalid choice: 'aid'"),
    (["mutate", "requant", "-n", "0"], "-n: must be a whole number >= 1"),
    (["mutate", "requant", "--workers", "-1"], "--workers"),
    (["mutate", "requant", "--seed", "-3"], "--seed"),
    (["mutate", "requant", "--timeout", "0"], "--timeout"),
    (["mutate", "requant", "--param", "nope=1"], "unknown parameter 'nope'"),
])
def test_cli_refuses_bad_input_with_one_line(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err, err


def test_cli_refuses_an_output_below_a_file(capsys, tmp_path):
    (tmp_path / "f").write_text("")
    assert main(["mutate", "requant", "-o", str(tmp_path / "f" / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "is a file" in err, err


@pytest.mark.icarus
def test_a_small_run_end_to_end_and_resumed(capsys, tmp_path):
    argv = ["mutate", "requant", "-n", "3", "--workers", "0", "--vectors", "100", "--equiv", "off",
            "-o", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "score" in out
    doc = json.loads((tmp_path / "mutate-requant.json").read_text())
    t = doc["totals"]
    assert t["mutants"] == 3 and t["killed"] + t["survived"] + t["equivalent"] + t["not_run"] == 3
    assert doc["control"]["verdict"] == "survived"
    for r in doc["mutants"]:
        assert r["verdict"] in mech.VERDICTS and r["command"].startswith("mutate -mode") and "time_s" in r
    assert "# Mutation testing: requant" in (tmp_path / "mutate-requant.md").read_text()
    # a rerun resumes: every mutant's result is read back, none simulated again
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "resuming: 3 mutants done before, 0 to run" in err, err
    assert json.loads((tmp_path / "mutate-requant.json").read_text())["mutants"] == doc["mutants"]
