"""Bad input, every command: one line on stderr, the right exit code (2 for bad input),
no traceback, and no work started (no training, simulation or synthesis) -- a table of
(command, exit code, message fragment)."""

import errno
import os
import signal
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import flows.outdir
from flows.cli import main


@pytest.fixture(autouse=True)
def no_work(monkeypatch):
    """Fail the test if a command starts real work before refusing its input."""
    def work(*a, **k):
        raise AssertionError("work started before the input was checked")

    stub = types.SimpleNamespace(capacity=lambda design: 1 << 20, cosim=work)
    monkeypatch.setattr("flows.orchestrate.testbench", lambda engine: stub)
    monkeypatch.setattr("golden.nets.digits.build", work)
    monkeypatch.setattr("flows.synth._run", work)
    monkeypatch.setattr("analog.aid.evaluate", work)
    bench_stub = types.SimpleNamespace(bench=work)
    monkeypatch.setattr("cosim.engines.benches", lambda: {"stub": bench_stub})
    monkeypatch.setattr("flows.bench.benches", lambda: {"stub": bench_stub})


@pytest.fixture
def paths(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    d = tmp_path / "a-dir"
    d.mkdir()
    return {"file": str(f), "dir": str(d), "tmp": str(tmp_path)}


CASES = [
    # 1. output paths, checked first
    ("verilog requant -o {file}", 2, "-o {file}: exists and is not a directory"),
    ("verilog requant -o {file}/sub", 2, "{file} is a file, not a directory"),
    ("cosim requant --json {file}/r.json", 2, "--json {file}/r.json: folder {file}: exists and is not a directory"),
    ("cosim requant --json {dir}", 2, "--json {dir}: is a directory, not a file"),
    ("verify -o {file}", 2, "-o {file}: exists and is not a directory"),
    ("verify -o {file}/deeper/still", 2, "{file} is a file, not a directory"),
    ("bench stub -o {file}", 2, "-o {file}: exists and is not a directory"),
    ("synth requant -o {file}", 2, "-o {file}: exists and is not a directory"),
    ("analog aid -o {file}/x", 2, "{file} is a file, not a directory"),
    # 2. sizes and numbers
    ("cosim requant --vectors 1000000000000", 2, "--vectors 1000000000000 is more than the requant harness holds: "
                                                 "at most 1048576 per run"),
    ("cosim requant --vectors -5", 2, "cosim: argument --vectors: must be a whole number >= 0, not '-5'"),
    ("cosim requant --seed 4294967297", 2, "cosim: argument --seed: must be an integer in 0..4294967295"),
    ("cosim requant --seed -1", 2, "argument --seed: must be an integer in 0..4294967295, not '-1'"),
    ("cosim requant --timeout 0", 2, "cosim: argument --timeout: must be a positive number, not '0'"),
    ("cosim requant --timeout -1", 2, "argument --timeout: must be a positive number, not '-1'"),
    ("cosim requant --timeout nan", 2, "argument --timeout: must be a positive number, not 'nan'"),
    ("verify --images 100000", 2, "--images must be between 1 and 360 (the digits test images), not 100000"),
    ("verify --images 0", 2, "--images must be between 1 and 360"),
    ("verify --seed 4294967296", 2, "verify: argument --seed: must be an integer in 0..4294967295"),
    ("synth requant --freq 0", 2, "synth: argument --freq: must be a positive number, not '0'"),
    ("synth requant --freq -5", 2, "argument --freq: must be a positive number, not '-5'"),
    ("synth requant --timeout 0 -o {tmp}/synth", 2, "synth: argument --timeout: must be a positive number"),
    ("analog aid --images 361", 2, "--images must be >= 0 and at most 360 (the digits test images), not 361"),
    ("analog aid --seed 4294967296", 2, "analog: argument --seed: must be an integer"),
    ("analog aid --mc 1", 2, "--mc must be an integer >= 2, not 1"),
    ("analog aid --mc 1000000000000", 2, "--mc 1000000000000 needs at least 4096000.0 GB for its Monte Carlo errors"),
    ("bench stub --vectors -1", 2, "bench: argument --vectors: must be a whole number >= 0"),
    # 5. usage errors: the program named once, the subcommand once
    ("frobnicate", 2, "nnaccel: error: argument command: invalid choice: 'frobnicate'"),
    ("doctor --bogus", 2, "nnaccel: error: unrecognized arguments: --bogus"),
    ("verilog nosuch", 2, "nnaccel: error: verilog: argument engine: invalid choice: 'nosuch'"),
    ("cosim requant --sim modelsim", 2, "nnaccel: error: cosim: argument --sim: invalid choice: 'modelsim'"),
    ("verify --variant int4", 2, "nnaccel: error: verify: argument --variant: invalid choice: 'int4'"),
    ("bench nosuch", 2, "nnaccel: error: bench: argument what: invalid choice: 'nosuch'"),
    ("synth requant --target xilinx", 2, "nnaccel: error: synth: argument --target: invalid choice: 'xilinx'"),
    ("analog spice", 2, "nnaccel: error: analog: argument what: invalid choice: 'spice'"),
    ("cache wipe", 2, "nnaccel: error: cache: argument action: invalid choice: 'wipe'"),
    ("cache", 2, "nnaccel: error: cache: the following arguments are required: action"),
]


@pytest.mark.parametrize("command, code, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line_and_exit_code(capsys, paths, command, code, fragment):
    got = main(command.format(**paths).split())
    err = capsys.readouterr().err
    assert got == code, f"exit {got}, expected {code}; stderr: {err!r}"
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("nnaccel: error: ") and err.count("nnaccel") == 1, err
    assert fragment.format(**paths) in err, err


def test_synth_refused_leaves_no_work_folder(capsys, tmp_path):
    for argv in (["--timeout", "0"], ["--freq", "0"]):
        assert main(["synth", "requant", *argv, "-o", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()
    capsys.readouterr()


def test_read_only_output_is_refused_before_work(monkeypatch, capsys, tmp_path):
    """A read-only file system (or a folder we may not write) is found by a real probe."""
    def read_only(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(flows.outdir.tempfile, "mkstemp", read_only)
    for argv, fragment in ((["verilog", "requant", "-o", str(tmp_path / "v")], f"-o {tmp_path / 'v'}: cannot write"),
                           (["verify", "-o", str(tmp_path / "r")], "Read-only file system"),
                           (["cosim", "requant", "--json", str(tmp_path / "c.json")], "--json"),
                           (["analog", "aid", "-o", str(tmp_path)], f"cannot write in {tmp_path} (")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and fragment in err and "Read-only file system" in err, err


def test_bench_output_checked_before_the_bench_runs(tmp_path):
    from flows.bench import bench
    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        bench("stub", out=f, vectors=10)


def test_console_script_prints_no_traceback(tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    for argv in (["verilog", "requant", "-o", str(f)], ["cosim", "requant", "--seed", str(2**32)]):
        r = subprocess.run([sys.executable, "-m", "flows.cli", *argv], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


# ----------------------------------------------------------------- 3. no litter after a kill

def _dead_pid() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(p.stdout)


def test_kill_in_the_write_phase_is_cleaned_up_by_the_next_run(tmp_path):
    """A writer SIGKILLed inside atomic_dir leaves .out.tmpPID; the next write of out removes it."""
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import os, signal
        from flows.outdir import atomic_dir
        with atomic_dir({str(out)!r}) as tmp:
            (tmp / "half.txt").write_text("half")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    r = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert r.returncode == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".out.tmp"), left
    old = tmp_path / f".out.old{_dead_pid()}"  # a kill between the two renames
    old.mkdir()
    live = tmp_path / f".out.tmp{os.getppid()}"  # a concurrent writer that is alive: kept
    live.mkdir()
    from flows.outdir import atomic_dir, pid_alive
    with atomic_dir(out) as tmp:
        (tmp / "whole.txt").write_text("whole")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [live.name, "out"] and (out / "whole.txt").exists(), names
    assert pid_alive(os.getppid())


def test_stale_file_temporary_swept_by_the_next_command(tmp_path, capsys):
    dead = _dead_pid()
    out = tmp_path / "v"
    out.mkdir()
    (out / f".requant.v.tmp{dead}").write_text("half a design")
    (out / f".requant.json.tmp{os.getppid()}").write_text("a live writer's")  # kept: its process is alive
    assert main(["verilog", "requant", "-o", str(out)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["requant.v", "requant.json", "requant.core", f".requant.json.tmp{os.getppid()}"])


# ----------------------------------------------------------------- 5. names that tell the truth

@pytest.mark.icarus
def test_icarus_waves_are_named_for_their_format(requant_design, tmp_path, monkeypatch):
    """cocotb runs vvp with -fst, so Icarus writes FST: the file is waves.fst."""
    import numpy as np
    from cosim.stream import run_stream
    monkeypatch.setenv("NNACCEL_CACHE", str(tmp_path / "cache"))
    vec = {"acc": np.arange(8, dtype=np.int64), "mult": np.full(8, 1 << 30), "shift": np.zeros(8, dtype=np.int64)}
    from golden.quant import requantize
    exp = requantize(vec["acc"], vec["mult"], vec["shift"], 0).numpy()
    r = run_stream(requant_design, vec, {"zero_point": 0, "act_min": -128, "act_max": 127}, exp, sim="icarus",
                   waves=True)
    assert r.passed and r.waves and Path(r.waves).name == "waves.fst", r.waves
    assert not Path(r.waves).read_bytes().startswith(b"$")  # FST is binary; a VCD starts with "$date"
