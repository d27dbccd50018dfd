"""The simulator cache stays tidy: killed runs are swept, builds are capped with
least-recently-used eviction, `nnaccel cache info` / `clean` (no simulator runs here)."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cosim import runner
from flows.cli import main


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("NNACCEL_CACHE", str(root))
    monkeypatch.delenv("NNACCEL_CACHE_MAX_GB", raising=False)
    return root


def _fake_build(root: Path, name: str, size: int, age_s: float) -> Path:
    d = root / "builds" / name
    (d / "build").mkdir(parents=True)
    (d / "build" / "Vtop").write_bytes(b"\0" * size)
    (d / "COMPLETE").write_text("done\n")
    t = time.time() - age_s
    os.utime(d, (t, t))
    return d


def test_killed_run_folder_is_swept_by_the_next_run(cache):
    script = textwrap.dedent("""
        import os, signal
        from cosim import runner
        d = runner.new_run_dir("requant-verilator")
        (d / "in.bin").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    r = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert r.returncode == -signal.SIGKILL
    runs = cache / "runs"
    (killed,) = runs.iterdir()
    kept = runs / "requant-verilator-failed"  # a finished run kept for its log: no mark
    kept.mkdir()
    (kept / "sim.log").write_text("log")
    split = runs / "winograd-verilator-x"  # a run split in parts, killed in its second part
    (split / "run1").mkdir(parents=True)
    (split / "run1" / runner.RUN_MARK).write_text(f"{_dead_pid()}\n")
    assert runner.cache_info()["runs"]["stale"] == 2
    mine = runner.new_run_dir("requant-verilator")  # sweeps first
    assert (mine / runner.RUN_MARK).read_text().strip() == str(os.getpid())
    assert sorted(p.name for p in runs.iterdir()) == sorted([kept.name, mine.name])
    assert runner.sweep_runs() == []  # a live run is left alone


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def test_builds_are_capped_least_recently_used_first(cache, monkeypatch):
    old = _fake_build(cache, "a-old", 4000, age_s=3 * 3600)
    mid = _fake_build(cache, "b-mid", 4000, age_s=2 * 3600)
    recent = _fake_build(cache, "c-recent", 4000, age_s=60)  # within the grace period: never evicted
    monkeypatch.setenv("NNACCEL_CACHE_MAX_GB", str(9000 / 1e9))
    assert runner.cache_cap_bytes() == 9000
    new = _fake_build(cache, "d-new", 4000, age_s=0)
    assert runner.evict_builds(keep=new) == [old, mid]
    assert recent.exists() and new.exists()
    monkeypatch.setenv("NNACCEL_CACHE_MAX_GB", "0")  # no cap
    assert runner.cache_cap_bytes() is None and runner.evict_builds() == []
    monkeypatch.setenv("NNACCEL_CACHE_MAX_GB", "lots")
    with pytest.raises(ValueError, match="NNACCEL_CACHE_MAX_GB must be a number of gigabytes"):
        runner.cache_cap_bytes()


def test_build_in_progress_is_not_evicted(cache, monkeypatch):
    import fcntl
    busy = _fake_build(cache, "busy", 4000, age_s=3 * 3600)
    monkeypatch.setenv("NNACCEL_CACHE_MAX_GB", str(1 / 1e9))
    with open(busy.with_name("busy.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert runner.evict_builds() == []
    assert runner.evict_builds() == [busy]


def _fake_compiler(monkeypatch, size: int = 100) -> list[Path]:
    """runner._compile replaced by one that writes a ``size``-byte executable; returns the
    list of the folders it built in."""
    compiled = []

    def fake_compile(sources, top, sim, defines, waves, timeout_s, env, final):
        compiled.append(final)
        shutil.rmtree(final, ignore_errors=True)  # as the real one: a half-made folder goes first
        (final / "build").mkdir(parents=True)
        (final / "build" / top).write_bytes(b"\0" * size)
        (final / "COMPLETE").write_text("done\n")

    monkeypatch.setattr(runner, "_compile", fake_compile)
    return compiled


def test_a_reused_build_is_touched_and_a_new_one_evicts(cache, monkeypatch):
    compiled = _fake_compiler(monkeypatch, size=5000)
    b = runner.build({"top.v": "module top; endmodule\n"}, "top", "verilator")
    assert not b.reused and compiled == [b.directory]
    t = time.time() - 5 * 3600
    os.utime(b.directory, (t, t))
    again = runner.build({"top.v": "module top; endmodule\n"}, "top", "verilator")
    assert again.reused and len(compiled) == 1
    assert time.time() - again.directory.stat().st_mtime < 60  # touched: recently used
    stale = _fake_build(cache, "zz-stale", 5000, age_s=4 * 3600)
    monkeypatch.setenv("NNACCEL_CACHE_MAX_GB", str(12000 / 1e9))
    other = runner.build({"top.v": "module top; /* changed */ endmodule\n"}, "top", "verilator")
    assert not other.reused and not stale.exists() and b.directory.exists() and other.directory.exists()
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, not 0"):
        runner.build({"top.v": "x"}, "top", "verilator", timeout_s=0)


def test_a_build_for_another_cocotb_or_without_its_executable_is_made_again(cache, monkeypatch):
    """A build runs against cocotb's libraries: one made for another cocotb version is not
    reused, nor one whose executable is gone (its run would exit 127); a run puts this
    environment's cocotb libraries first on the loader's path, whichever venv made the build."""
    compiled = _fake_compiler(monkeypatch)
    src = {"top.v": "module top; endmodule\n"}
    b = runner.build(src, "top", "verilator")
    assert runner.build(src, "top", "verilator").reused and len(compiled) == 1
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/x")
    assert runner.run_env("verilator")["LD_LIBRARY_PATH"] == f"{runner.cocotb_libs()}:/opt/x"
    assert "LD_LIBRARY_PATH" not in runner.run_env("icarus")
    monkeypatch.setattr(runner, "cocotb_version", lambda: "cocotb-0.0")
    other = runner.build(src, "top", "verilator")
    assert not other.reused and other.directory != b.directory and len(compiled) == 2
    (other.build_dir / "top").unlink()  # COMPLETE still there
    with pytest.raises(runner.CosimError, match="has no top"):
        runner.run(other, "cosim.tb_stream", cache / "runs" / "x")
    again = runner.build(src, "top", "verilator")
    assert not again.reused and (again.build_dir / "top").exists() and len(compiled) == 3


def test_a_build_reused_while_eviction_lists_the_cache_is_kept(cache, monkeypatch):
    """Eviction looks at a build's age again under its lock: a run that reused (touched) it
    after the listing keeps it."""
    old = _fake_build(cache, "old", 4000, age_s=3 * 3600)
    monkeypatch.setenv("NNACCEL_CACHE_MAX_GB", str(1 / 1e9))
    real = runner._try_lock

    @contextlib.contextmanager
    def reused_meanwhile(lock_path):
        os.utime(old)  # another worker's build() reuses it between the listing and the lock
        with real(lock_path) as free:
            yield free

    monkeypatch.setattr(runner, "_try_lock", reused_meanwhile)
    assert runner.evict_builds() == [] and (old / "COMPLETE").exists()


def test_an_interrupted_eviction_never_leaves_a_finished_looking_build(cache, monkeypatch):
    compiled = _fake_compiler(monkeypatch)
    src = {"top.v": "module top; endmodule\n"}
    b = runner.build(src, "top", "verilator")
    t = time.time() - 3 * 3600
    os.utime(b.directory, (t, t))
    monkeypatch.setenv("NNACCEL_CACHE_MAX_GB", str(1 / 1e9))
    monkeypatch.setattr(runner.shutil, "rmtree", lambda *a, **k: None)  # killed before deleting anything
    assert runner.evict_builds() == [b.directory]
    assert not (b.directory / "COMPLETE").exists()
    monkeypatch.undo()
    monkeypatch.setenv("NNACCEL_CACHE", str(cache))
    _fake_compiler(monkeypatch)
    assert not runner.build(src, "top", "verilator").reused


def test_cache_info_and_clean(cache, capsys):
    assert main(["cache", "info"]) == 0
    assert "(not created yet)" in capsys.readouterr().out
    _fake_build(cache, "a", 3000, age_s=100)
    _fake_build(cache, "b", 2000, age_s=100)
    (cache / "builds" / "a.lock").write_text("")
    (cache / "runs" / "kept").mkdir(parents=True)
    (cache / "runs" / "kept" / "sim.log").write_text("x" * 100)
    (cache / "nets").mkdir()
    (cache / "nets" / "digits_float_seed3_digits-3.pt").write_bytes(b"\0" * 700)
    (cache / "digits_int8_seed0_digits-3.pt").write_bytes(b"\0" * 300)  # before nets/ existed
    info = runner.cache_info()
    assert info["builds"] == {"count": 2, "bytes": 5000 + 2 * len("done\n")}
    assert info["runs"]["count"] == 1 and info["runs"]["stale"] == 0
    assert info["nets"] == {"count": 2, "bytes": 1000} and info["path"] == str(cache)
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert f"cache: {cache}" in out and "builds: 2 (5.0 kB)" in out and "nets: 2 (1.0 kB)" in out
    assert "capped at 5.0 GB" in out
    assert main(["cache", "clean"]) == 0
    assert "removed 5 entries" in capsys.readouterr().out
    info = runner.cache_info()
    assert info["builds"]["count"] == info["runs"]["count"] == info["nets"]["count"] == 0
    assert info["bytes"] == 0


def test_clean_leaves_a_running_simulation_alone(cache, capsys):
    live = runner.new_run_dir("requant-verilator")
    assert main(["cache", "clean"]) == 0
    assert "1 in use" in capsys.readouterr().out and live.exists()


def test_generated_verilog_is_cached_by_configuration(cache):
    """The second `generate` of a configuration reads the cache (shown by planting a
    marked copy there), another configuration gets its own entry, and an unreadable entry
    is converted again."""
    from rtl.export import _cache_path, generate
    from rtl.engines import get_engine
    a = generate("requant")
    path = _cache_path("requant", a.config)
    assert path.is_file() and path.parent == cache / "verilog"
    d = json.loads(path.read_text())
    d["verilog"] = "// planted\n" + d["verilog"]
    path.write_text(json.dumps(d))
    again = generate("requant")
    assert again.verilog.startswith("// planted") and again.ports == a.ports
    assert generate("requant", cache=False).verilog == a.verilog
    assert _cache_path("requant", get_engine("requant").config({"out_bits": "4"})) != path
    path.write_text("{not json")
    assert generate("requant").verilog == a.verilog
    assert json.loads(path.read_text())["verilog"] == a.verilog
    info = runner.cache_info()
    assert info["verilog"]["count"] == 1


@pytest.mark.verilator
@pytest.mark.icarus
def test_a_build_off_the_main_thread_keeps_its_time_limit(cache):
    """A Dask task runs on a worker's thread, where no alarm can be set: the build then
    runs in a child process, ended (with its compiler) at the limit; a build in time
    completes as on the main thread."""
    import threading
    out = {}

    def build(key, sim, timeout_s):
        try:
            out[key] = runner.build({"top.v": "module top; endmodule\n"}, "top", sim, timeout_s=timeout_s)
        except Exception as e:  # noqa: BLE001
            out[key] = e

    for args in (("late", "verilator", 0.5), ("in time", "icarus", 300)):
        t = threading.Thread(target=build, args=args)
        t.start()
        t.join()
    assert isinstance(out["late"], runner.SimTimeout), out["late"]
    assert "building top with verilator exceeded its 0.5 s wall-clock limit" in str(out["late"])
    assert not list((cache / "builds").glob("top-verilator-*/COMPLETE"))
    b = out["in time"]
    assert not isinstance(b, Exception) and (b.directory / "COMPLETE").exists() and not b.reused
