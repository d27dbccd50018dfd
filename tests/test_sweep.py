"""`nnaccel sweep`: specs checked up front, points on the executor (serial, a local Dask
cluster, a real scheduler with worker processes), a resumable table, the report."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows import sweep as sweep_mod
from flows.cli import main
from flows.sweep import load_spec, pareto_front, sweep

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

MODEL_SPEC = """
engine = "phantom"
measure = ["model"]
[grid]
threads = [1, 2, 4]
window = [5, 6]
[[workload]]
synthetic = "conv"
in_channels = 8
size = 6
weight_density = [0.3, 1.0]
"""


def write(tmp_path, text, name="spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def rows(out: Path) -> list[dict]:
    # One read of the bytes: a running sweep replaces the file (atomically) after every
    # point, and pyarrow opens a path more than once (footer, then pages), so reading the
    # path itself can mix two versions.
    import pyarrow as pa
    return pq.read_table(pa.BufferReader((out / "points.parquet").read_bytes())).to_pylist()


# ----------------------------------------------------------------------------- bad specs


BAD = {
    "unknown top field": ('engine = "phantom"\nthreads = 2\n', "'threads'"),
    "engine missing": ('measure = ["model"]\n', "'engine' is missing"),
    "engine unknown": ('engine = "tpu"\n', "engine 'tpu' is not one of"),
    "measure": ('engine = "phantom"\nmeasure = ["power"]\n', "measure must be"),
    "parameter unknown": ('engine = "phantom"\n[grid]\ncores = [1, 2]\n', "unknown parameter 'cores'"),
    "parameter type": ('engine = "phantom"\n[grid]\nthreads = ["many"]\n', "threads"),
    "random samples": ('engine = "phantom"\n[random]\nsamples = 0\nparams = { threads = [1] }\n', "random.samples"),
    "random range": ('engine = "phantom"\n[random]\nsamples = 2\nparams = { threads = { min = 4, max = 1 } }\n',
                     "random.params.threads"),
    "no workload": ('engine = "phantom"\n', "no [[workload]]"),
    "two workload kinds": ('engine = "phantom"\n[[workload]]\ndemo = "int8"\nsynthetic = "conv"\n', "exactly one of"),
    "density": ('engine = "phantom"\n[[workload]]\nsynthetic = "conv"\nweight_density = 1.5\n',
                "workload[0].weight_density"),
    "vectors path": ('engine = "phantom"\n[[workload]]\nvectors = "nowhere"\n', "workload[0].vectors"),
    "demo layer": ('engine = "phantom"\n[[workload]]\ndemo = "int8"\nlayers = ["conv9"]\n', "no layer 'conv9'"),
    "pareto": ('engine = "phantom"\n[report]\npareto = "cycles"\n[[workload]]\nsynthetic = "conv"\n',
               "report.pareto"),
    "energy table": ('engine = "phantom2d"\nmeasure = ["energy"]\n[[workload]]\nsynthetic = "conv"\n',
                     "no energy table"),
    "aid runs no layers": ('engine = "aid"\nmeasure = ["cosim"]\n', "synth"),
    "toml": ('engine = "phantom\n', "not valid TOML"),
    "place": ('engine = "phantom"\nplace = "no"\n', "place: must be true or false"),
    "too many points": ('engine = "phantom"\n[random]\nsamples = 30000\nparams = { window = [5, 6] }\n'
                        '[[workload]]\nsynthetic = "conv"\n', "more than"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_spec_gets_one_line_naming_the_field(case, tmp_path, capsys):
    text, needle = BAD[case]
    spec = write(tmp_path, text)
    assert main(["sweep", str(spec), "-o", str(tmp_path / "out"), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "out" / "points.parquet").exists()


def test_cli_usage_errors(tmp_path, capsys):
    assert main(["sweep", "-o", str(tmp_path / "o")]) == 2
    assert main(["sweep", "--report", str(tmp_path)]) == 2  # not a sweep directory
    assert main(["sweep", str(write(tmp_path, MODEL_SPEC)), "--report", str(tmp_path)]) == 2
    assert main(["sweep", str(write(tmp_path, MODEL_SPEC)), "-o", str(tmp_path / "o"),
                 "--scheduler", "localhost"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("nnaccel: error:") for line in err)


def test_unreachable_scheduler_is_one_line(tmp_path, capsys):
    spec = write(tmp_path, MODEL_SPEC)
    rc = main(["sweep", str(spec), "-o", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:1", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "cannot reach the Dask scheduler" in err[0]


def test_spec_expands_grid_random_and_workloads(tmp_path):
    spec = load_spec(write(tmp_path, MODEL_SPEC + """
[random]
samples = 5
seed = 3
params = { chunk = [64, 128] }
"""))
    # 6 grid points + 5 samples (each a grid point with a drawn chunk; duplicates merged)
    assert 6 < len(spec.configs) <= 11 and len(spec.workloads) == 2
    assert all(set(c) >= {"threads", "window"} for c in spec.configs)
    assert spec.swept == ["threads", "window", "chunk"]
    again = load_spec(write(tmp_path, MODEL_SPEC + "[random]\nsamples = 5\nseed = 3\n"
                            "params = { chunk = [64, 128] }\n", "b.toml"))
    assert again.configs == spec.configs  # the seed fixes the samples
    keys = [p.key for p in spec.points()]
    assert len(set(keys)) == len(keys)


# ----------------------------------------------------------------------------- the report


def test_pareto_front_keeps_exactly_the_undominated():
    pts = [{"x": 1, "y": 9}, {"x": 2, "y": 5}, {"x": 2, "y": 7}, {"x": 3, "y": 5}, {"x": 4, "y": 1},
           {"x": 5, "y": 2}, {"x": None, "y": 0}, {"x": 6, "y": float("nan")}]
    front = pareto_front(pts, "x", "y")
    assert [(r["x"], r["y"]) for r in front] == [(1, 9), (2, 5), (4, 1)]
    # a checker that can fail: a dominated point added at the front's left changes it
    assert [(r["x"], r["y"]) for r in pareto_front(pts + [{"x": 0, "y": 0}], "x", "y")] == [(0, 0)]


# ----------------------------------------------------------------------------- serial runs


def test_model_sweep_writes_table_summary_and_plots(tmp_path, capsys):
    spec = write(tmp_path, MODEL_SPEC + '[report]\npareto = ["p_threads", "model_cycles"]\n')
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "-o", str(out), "--workers", "0", "-q"]) == 0
    assert "12 points: 12 ok" in capsys.readouterr().out
    rs = rows(out)
    assert len(rs) == 12 and {r["status"] for r in rs} == {"ok"} and len({r["point"] for r in rs}) == 12
    for r in rs:
        assert r["model_cycles"] > 0 and r["macs"] > 0 and json.loads(r["versions"])["nnaccel"]
    # more threads, fewer cycles, on every workload and window
    for w in {r["workload"] for r in rs}:
        for win in (5, 6):
            cyc = [r["model_cycles"] for r in sorted(rs, key=lambda r: r["p_threads"])
                   if r["workload"] == w and r["p_window"] == win]
            assert cyc == sorted(cyc, reverse=True) and cyc[0] > cyc[-1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "nnaccel-sweep/1" and summary["configurations"] == 6
    assert summary["pareto"] == {"x": "p_threads", "y": "model_cycles"}
    assert [json.loads(f["params"])["threads"] for f in summary["front"]] == ["1", "2", "4"]
    for f in ("summary.md", "pareto.png", "param-threads.png", "param-window.png", "spec.toml"):
        assert (out / f).stat().st_size > 0, f
    md = (out / "summary.md").read_text()
    assert "Pareto front: model_cycles against p_threads" in md and "| 4 | 6 |" in md or "| 4 | 5 |" in md
    # --report rebuilds the page from the table alone
    (out / "summary.md").unlink()
    (out / "pareto.png").unlink()
    assert main(["sweep", "--report", str(out)]) == 0
    assert (out / "summary.md").exists() and (out / "pareto.png").exists()


def test_interrupted_sweep_reruns_only_what_is_missing(tmp_path, monkeypatch):
    spec = write(tmp_path, MODEL_SPEC)
    out = tmp_path / "out"
    real = sweep_mod.evaluate
    calls = []

    def interrupted(task):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(task["key"])
        return real(task)

    monkeypatch.setattr(sweep_mod, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep(spec, out, workers=0, progress=False)
    first = {r["point"]: r["finished"] for r in rows(out)}
    assert len(first) == 5

    def failing_once(task):  # one point fails: recorded with its error, the rest go on
        calls.append(task["key"])
        if len(calls) == 6:
            raise RuntimeError("solver crashed\nsecond line")
        return real(task)

    monkeypatch.setattr(sweep_mod, "evaluate", failing_once)
    time.sleep(1.1)  # "finished" has one-second resolution
    s = sweep(spec, out, workers=0, progress=False)
    assert s["points"] == 12 and s["ok"] == 11 and s["failed"] == 1 and s["ran_now"] == 7
    assert set(calls[5:]).isdisjoint(first)  # nothing finished was redone
    rs = rows(out)
    assert all(r["finished"] == first[r["point"]] for r in rs if r["point"] in first)
    bad = [r for r in rs if r["status"] == "failed"]
    assert bad[0]["error"] == "RuntimeError: solver crashed"
    assert main(["sweep", str(spec), "-o", str(out), "--workers", "0", "-q"]) == 0  # the failed point, again
    assert len(calls) == 13 and {r["status"] for r in rows(out)} == {"ok"}


def test_killed_sweep_leaves_a_readable_table(tmp_path):
    """SIGKILL while points are being written: the table is whole (written atomically),
    the rerun finishes only the rest and sweeps the killed writer's temporaries."""
    spec = write(tmp_path, MODEL_SPEC.replace("threads = [1, 2, 4]", "threads = [1, 2, 3, 4, 5, 6, 7, 8]"))
    out = tmp_path / "out"
    proc = subprocess.Popen([str(BIN / "nnaccel"), "sweep", str(spec), "-o", str(out), "--workers", "0", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "points.parquet").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = rows(out)
    assert 1 <= len(before) < 32
    (out / f".points.parquet.tmp{2 ** 22 + 7}").write_bytes(b"half")  # a dead writer's leftover
    s = sweep(spec, out, workers=0, progress=False)
    assert s["points"] == 32 and s["ok"] == 32 and s["ran_now"] == 32 - len(before)
    assert not list(out.glob(".points.parquet.tmp*"))


# ----------------------------------------------------------------------------- Dask


@pytest.mark.slow
@pytest.mark.icarus
def test_cosim_sweep_on_a_local_cluster(tmp_path):
    spec = write(tmp_path, """
        engine = "requant"
        measure = ["model", "cosim"]
        sim = "icarus"
        [[workload]]
        synthetic = "linear"
        in_channels = 16
        out_channels = 4
        images = [1, 3]
        """)
    s = sweep(spec, tmp_path / "out", workers=2, progress=False)
    assert s["ok"] == 2 and s["workers"] == 2 and s["mismatching_points"] == 0
    rs = rows(tmp_path / "out")
    assert all(r["passed"] and r["mismatches"] == 0 and r["outputs"] > 0 and r["cycles"] > 0 for r in rs)
    assert all(r["worker"].startswith(os.uname().nodename) for r in rs)
    assert sorted(r["outputs"] for r in rs) == [4, 12]
    assert s["time_split_s"]["sim_s"] > 0


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()


@pytest.mark.slow
def test_real_scheduler_two_workers_one_killed(tmp_path):
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1 (each stops by
    itself when left alone): the sweep over them equals the serial run, and after one
    worker is killed mid-sweep every point still completes."""
    spec = write(tmp_path, """
        engine = "phantom"
        measure = ["model"]
        [grid]
        threads = [1, 2, 3, 4, 5, 6, 7, 8]
        window = [5, 6]
        [[workload]]
        synthetic = "conv"
        in_channels = 16
        out_channels = 16
        size = 10
        weight_density = [0.3, 0.6]
        """)
    serial = tmp_path / "serial"
    sweep(spec, serial, workers=0, progress=False)
    sched_file = tmp_path / "scheduler.json"
    procs = [_start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(sched_file), "--idle-timeout", "300"], tmp_path / "scheduler.log")]
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not sched_file.exists():
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in range(2):
            procs.append(_start([str(BIN / "dask"), "worker", "--scheduler-file", str(sched_file), "--nthreads",
                                 "1", "--no-dashboard", "--host", "127.0.0.1", "--death-timeout", "60",
                                 "--name", f"w{i}"], tmp_path / f"worker{i}.log"))
        from distributed import Client
        with Client(address, timeout="60s") as c:
            c.wait_for_workers(2, timeout=60)

        # 1. the sweep over the scheduler equals the serial run
        out = tmp_path / "cluster"
        s = sweep(spec, out, scheduler=address, progress=False)
        assert s["ok"] == 32
        got = {r["point"]: r["model_cycles"] for r in rows(out)}
        assert got == {r["point"]: r["model_cycles"] for r in rows(serial)}
        assert len({r["worker"] for r in rows(out)}) == 2

        # 2. one worker killed mid-sweep (its process group: nanny and worker): all points complete
        out2 = tmp_path / "killed"
        runner = subprocess.Popen([str(BIN / "nnaccel"), "sweep", str(spec), "-o", str(out2), "--scheduler",
                                   address, "-q"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and not (out2 / "points.parquet").exists():
            time.sleep(0.05)
        assert procs[1].poll() is None
        at_kill = len(rows(out2))
        _stop(procs[1])
        text, _ = runner.communicate(timeout=300)
        assert runner.returncode == 0, text
        rs = rows(out2)
        assert at_kill < 32 and len(rs) == 32 and {r["status"] for r in rs} == {"ok"}
        assert {r["point"]: r["model_cycles"] for r in rs} == got
    finally:
        for p in reversed(procs):
            _stop(p)


def test_bench_jobs_come_back_in_order_and_a_failed_one_is_named():
    """`nnaccel bench`'s run hook (the executor under a bench's jobs), in process."""
    from cosim.runner import CosimError
    from flows.executor import Executor
    with Executor(0) as ex:
        run = ex.runner("bench demo")
        assert run(abs, [-3, 2, -1], ["a", "b", "c"]) == [3, 2, 1]
        with pytest.raises(CosimError, match=r"^bench demo: b: TypeError: bad operand"):
            run(abs, [-1, "s"], ["a", "b"])


@pytest.mark.parametrize("spec", sorted((REPO / "docs" / "sweeps").glob("*.toml")), ids=lambda p: p.stem)
def test_every_documented_example_spec_is_valid(spec):
    s = load_spec(spec)
    assert s.points() and s.engine in spec.read_text()
    assert s.workloads or s.measure == ("synth",)


def _hold(seconds: float) -> tuple[float, float]:
    t0 = time.time()
    time.sleep(seconds)
    return t0, time.time()


def test_declared_slots_keep_heavy_tasks_apart():
    """A worker with two threads and one `synth` slot runs two synthesis tasks one after
    the other, and two plain ones at once; a slot no worker declares is not asked for."""
    from distributed import LocalCluster

    from flows.executor import Executor
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, resources={"synth": 1},
                      dashboard_address=None) as cluster, Executor(scheduler=cluster.scheduler_address) as ex:
        assert ex.slots({"synth": 1, "gpu": 1}) == {"synth": 1} and ex.slots({"gpu": 1}) is None

        def spans(resources):
            out = sorted(o.value for o in ex.run(_hold, [0.6, 0.6], [f"a{resources}", f"b{resources}"],
                                                 resources=resources))
            return out[1][0] - out[0][1]  # the second's start minus the first's end

        assert spans({"synth": 1}) >= 0  # one after the other
        assert spans(None) < -0.3  # side by side
        assert spans({"gpu": 1}) < -0.3  # not declared: not held


def test_configurations_sum_what_they_map_and_the_front_compares_like_with_like(tmp_path):
    from flows.sweep import configurations
    row = lambda p, w, cyc, mapped=1, luts=None: {  # noqa: E731
        "params": p, "workload": w, "point": p + w, "p_x": len(p), "cycles": cyc, "layers_mapped": mapped,
        "luts": luts}
    ok = [row("a", "w1", 100, luts=10), row("a", "w2", None, mapped=0), row("bb", "w1", 50, luts=20),
          row("bb", "w2", None, mapped=0), row("ccc", "w1", 10, mapped=0, luts=1), row("ccc", "w2", None, mapped=0)]
    cs = {c["params"]: c for c in configurations(ok, 2)}
    assert cs["a"]["cycles"] == 100 and cs["bb"]["cycles"] == 50 and cs["a"]["luts"] == 10
    assert "cycles" not in cs["ccc"] and cs["ccc"]["mapped"] == ""  # maps nothing: no sum, not on a front
    assert [c["params"] for c in pareto_front(list(cs.values()), "luts", "cycles")] == ["a", "bb"]


def test_synthesis_is_asked_once_per_configuration():
    spec = load_spec(REPO / "docs" / "sweeps" / "winograd.toml")
    tasks = [p.task() for p in spec.points()]
    flagged = [t for t in tasks if t["synth"]]
    assert len(flagged) == len(spec.configs) < len(tasks)
    assert {t["workload"] for t in flagged} == {spec.workloads[0].label}
