"""The `nnaccel` command line: it only parses arguments and orchestrates.

Every error the user can cause ends as one line on stderr and a non-zero exit:
2 for bad usage or input, 1 for a check that failed or a tool that is missing.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


class UsageError(Exception):
    """Bad command-line input (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message; the subcommand named once
        command = self.prog.partition(" ")[2]
        raise UsageError(f"{command}: {message}" if command else message)


SEED_MAX = 2**32 - 1


def _whole(lo: int, hi: int | None, what: str):
    """An argparse type: a whole number in lo..hi (hi None: no upper bound)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = lo - 1
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
        return v
    return parse


# a seed, 0..2**32-1: what every simulator and the harness LFSRs take whole
_seed = _whole(0, SEED_MAX, f"an integer in 0..{SEED_MAX}")
_count = _whole(0, None, "a whole number >= 0")


def _positive(text: str) -> float:
    """argparse type: a finite number > 0 (seconds, MHz)."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return v


def _params(items: list[str], option: str = "--param") -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} takes KEY=VALUE, not {item!r}")
        out[key] = value
    return out


def cmd_doctor(args) -> int:
    from flows.doctor import doctor
    return doctor()


def cmd_verilog(args) -> int:
    from flows.orchestrate import write_design
    from flows.outdir import check_output_dir
    from rtl.export import generate
    out = check_output_dir(args.output)
    design = generate(args.engine, _params(args.param))
    for path in write_design(design, out):
        print(path)
    return 0


COVERAGE_DIR = "out/coverage"


def cmd_cosim(args) -> int:
    from flows.orchestrate import run_cosim
    if args.coverage_dir is not None and not args.coverage:
        raise UsageError("cosim: -o/--coverage-dir is where --coverage writes: give --coverage too")
    if args.coverage and args.sim != "verilator":
        raise UsageError(f"cosim: --coverage needs --sim verilator ({args.sim} has no coverage)")
    return run_cosim(args.engine, sim=args.sim, seed=args.seed, vectors=args.vectors, params=_params(args.param),
                     verilog=args.verilog, waves=args.waves, timeout_s=args.timeout, json_out=args.json,
                     coverage_dir=(args.coverage_dir or COVERAGE_DIR) if args.coverage else None)


def cmd_verify(args) -> int:
    from flows.verify import verify, verify_model
    if args.model or args.data:
        if not (args.model and args.data):
            raise UsageError("--model and --data go together (the model, and DATA.npz with its inputs x)")
        if args.variant or args.retrain:
            raise UsageError("--variant and --retrain are for the built-in digits nets, not with --model")
        return verify_model(args.model, args.data, sim=args.sim, out_dir=Path(args.output), seed=args.seed,
                            n_images=args.images, engine=args.engine, verilog=_params(args.verilog, "--verilog"),
                            workers=args.workers, scheduler=args.scheduler, objective=args.objective)
    return verify(net=args.net, variants=args.variant, sim=args.sim, out_dir=Path(args.output), seed=args.seed,
                  n_images=args.images, engine=args.engine, retrain=args.retrain,
                  verilog=_params(args.verilog, "--verilog"), workers=args.workers, scheduler=args.scheduler,
                  objective=args.objective)


def cmd_bench(args) -> int:
    from flows.bench import bench
    return bench(args.what, out=Path(args.output), vectors=args.vectors, workers=args.workers,
                 scheduler=args.scheduler)


def cmd_synth(args) -> int:
    from flows.synth import SynthError, summary, synth
    try:
        r = synth(args.engine, target=args.target, params=_params(args.param), out_dir=Path(args.output),
                  freq_mhz=args.freq, place=not args.no_place, timeout_s=args.timeout, check=args.check,
                  sim=args.sim)
    except SynthError as e:
        print(f"nnaccel: error: {e}", file=sys.stderr)
        return 1
    print("\n".join(summary(r)))
    print(f"wrote {Path(args.output) / f'{args.engine}-{args.target}.json'}")
    return 0 if r.get("netlist_check", {"passed": True})["passed"] else 1


def cmd_formal(args) -> int:
    from flows.formal import failures, formal, summary
    doc = formal(args.engine, Path(args.output), timeout_s=args.timeout, only=args.property)
    print("\n".join(summary(doc)))
    print(f"wrote {Path(args.output) / 'formal.json'}")
    bad = failures(doc)
    for line in bad:
        print(f"nnaccel: {line}", file=sys.stderr)
    return 1 if bad else 0


def cmd_analog(args) -> int:
    from flows.analog import analog
    return analog(args.what, mc=args.mc, use_spice=args.spice, out_dir=Path(args.output), seed=args.seed,
                  keep_spice=args.keep_spice, images=args.images, workers=args.workers, scheduler=args.scheduler,
                  study=args.study)


def cmd_cache(args) -> int:
    from cosim.runner import cache_info, clean_cache
    if args.action == "clean":
        r = clean_cache()
        busy = f"; {r['skipped']} in use by a running simulation or build, left" if r["skipped"] else ""
        print(f"cache: removed {r['removed']} entries, {_size(r['bytes'])} freed{busy}")
        return 0
    info = cache_info()
    cap = info["cap_bytes"]
    print(f"cache: {info['path']}" + ("" if Path(info["path"]).exists() else " (not created yet)"))
    print(f"size: {_size(info['bytes'])}; builds capped at "
          + (f"{_size(cap)} (NNACCEL_CACHE_MAX_GB)" if cap else "no limit (NNACCEL_CACHE_MAX_GB=0)"))
    print(f"builds: {info['builds']['count']} ({_size(info['builds']['bytes'])}), least recently used evicted first")
    runs = info["runs"]
    notes = [f"{runs[k]} {k}" for k in ("live", "stale") if runs[k]]
    print(f"runs: {runs['count']} ({_size(runs['bytes'])}; kept failed or waveform runs"
          + (", " + ", ".join(notes) if notes else "") + ")")
    print(f"nets: {info['nets']['count']} ({_size(info['nets']['bytes'])})")
    print(f"verilog: {info['verilog']['count']} generated designs ({_size(info['verilog']['bytes'])})")
    if info["synth"]["count"]:
        print(f"synth: {info['synth']['count']} results ({_size(info['synth']['bytes'])})")
    if info["other"]["count"]:
        print(f"other: {info['other']['count']} ({_size(info['other']['bytes'])})")
    return 0


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def cmd_import(args) -> int:
    from flows.model_import import import_command, summary
    from flows.outdir import check_output_dir
    check_output_dir(args.output, "-o", replace=True)
    if not 0.0 <= args.sparsity < 1.0:
        raise UsageError(f"--sparsity must lie in [0, 1), not {args.sparsity}")
    results = import_command(args.model, Path(args.output), data=args.data, variant=args.variant,
                             sparsity=args.sparsity, images=args.images)
    print("\n".join(summary(results)))
    print(f"wrote {args.output}")
    return 0


def cmd_sweep(args) -> int:
    from flows.sweep import report, sweep
    if args.report:
        if args.spec:
            raise UsageError("--report DIR rebuilds a sweep's report from its table: give no SPEC")
        s = report(Path(args.report))
        print(f"{s['points']} points ({s['ok']} ok, {s['failed']} failed); wrote {Path(args.report) / 'summary.md'}")
        return 0
    if not args.spec:
        raise UsageError("give a SPEC (TOML, see docs/sweeps.md) or --report DIR")
    s = sweep(args.spec, Path(args.output), workers=args.workers, scheduler=args.scheduler,
              progress=not args.quiet)
    print(f"{s['points']} points: {s['ok']} ok, {s['failed']} failed, {s['invalid']} refused"
          + (f", {s['mismatching_points']} with output mismatches" if s["mismatching_points"] else "")
          + f" ({s['wall_s']} s); wrote {Path(args.output) / 'summary.md'}")
    return 0 if not s["failed"] and not s["mismatching_points"] else 1


def cmd_mutate(args) -> int:
    from flows.mutate import mutate, summary
    doc = mutate(args.engine, n=args.n, out_dir=Path(args.output), workers=args.workers, scheduler=args.scheduler,
                 sim=args.sim, vectors=args.vectors, seed=args.seed, timeout_s=args.timeout, equiv=args.equiv,
                 equiv_timeout_s=args.equiv_timeout, params=_params(args.param),
                 argv=["mutate", args.engine, "-n", str(args.n), "--sim", args.sim, "--vectors", str(args.vectors),
                       "--seed", str(args.seed), *(f"--param={p}" for p in args.param or []),
                       *(["--workers", str(args.workers)] if args.workers is not None else []),
                       "-o", args.output])
    print("\n".join(summary(doc)))
    print(f"wrote {Path(args.output) / f'mutate-{args.engine}.json'} and .md")
    return 0  # survivors are a finding, not a failure


def build_parser() -> argparse.ArgumentParser:
    from flows.bench import table as bench_table
    from cosim.runner import SIMULATORS
    from rtl.engines import ENGINES
    engines = list(ENGINES)

    p = _Parser(prog="nnaccel", description="Generate, co-simulate and verify CNN accelerator engines.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("doctor", help="check the tools nnaccel needs")
    d.set_defaults(func=cmd_doctor)

    v = sub.add_parser("verilog", help="write ENGINE.v, ENGINE.json and a FuseSoC .core file")
    v.add_argument("engine", choices=engines)
    v.add_argument("--param", action="append", metavar="K=V", help="override a configuration field")
    v.add_argument("-o", "--output", default="build/verilog", help="output directory")
    v.set_defaults(func=cmd_verilog)

    c = sub.add_parser("cosim", help="co-simulate an engine against its golden model")
    c.add_argument("engine", choices=engines)
    c.add_argument("--sim", choices=SIMULATORS, default="verilator")
    c.add_argument("--seed", type=_seed, default=1, help="0..2**32-1")
    c.add_argument("--vectors", type=_count, default=20000,
                   help="random vectors on top of the edge cases (at most what the harness holds)")
    c.add_argument("--param", action="append", metavar="K=V")
    c.add_argument("--verilog", metavar="FILE", help="check this Verilog file instead of the generated design")
    c.add_argument("--waves", action="store_true", help="record waveforms (path printed)")
    c.add_argument("--timeout", type=_positive, default=300, help="wall-clock limit per simulation, seconds")
    c.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    c.add_argument("--coverage", action="store_true",
                   help="also measure Verilator line and toggle coverage of the engine's RTL (Verilator only)")
    c.add_argument("-o", "--coverage-dir", metavar="DIR",
                   help=f"where --coverage writes coverage-ENGINE.json/.md/.dat/.v (default {COVERAGE_DIR})")
    c.set_defaults(func=cmd_cosim)

    r = sub.add_parser("verify", help="whole networks through the RTL, an engine per layer, chained (the main job)")
    r.add_argument("--net", default="digits", choices=["digits"])
    r.add_argument("--model", help="a user's model instead of the digits nets (formats of `nnaccel import`)")
    r.add_argument("--data", metavar="DATA.npz", help="with --model: x (float inputs) and optionally y (labels)")
    r.add_argument("--verilog", action="append", metavar="ENGINE=FILE",
                   help="run this Verilog (netlist, hand edit) in place of ENGINE's generated design; repeatable")
    r.add_argument("--variant", action="append", choices=["float", "int8", "sparse", "ternary"],
                   help="repeatable; default: all four")
    r.add_argument("--engine", default="auto", choices=["auto"] + engines,
                   help="auto (default): an engine per layer; or every layer one engine maps on it, the rest on the host")
    r.add_argument("--objective", choices=["cycles", "energy"], default="cycles",
                   help="what auto's models decide by: fewest model cycles (default) or least model energy per image")
    r.add_argument("--sim", choices=SIMULATORS, default="verilator")
    r.add_argument("--seed", type=_seed, default=0, help="training seed (shipped weights for seed 0)")
    r.add_argument("--retrain", action="store_true",
                   help="train the nets from the seed on this machine (cached) instead of the shipped weights")
    r.add_argument("--images", type=int, default=32, help="test images (digits: 1..360; --model: the first N of DATA)")
    r.add_argument("--workers", type=_count, default=0,
                   help="run image batches on N local Dask worker processes (default 0: in this process)")
    r.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run image batches on a running Dask scheduler")
    r.add_argument("-o", "--output", default="out/verify")
    r.set_defaults(func=cmd_verify)

    b = sub.add_parser("bench", help="benchmarks that write JSON")
    b.add_argument("what", choices=list(bench_table()))
    b.add_argument("--vectors", type=_count, default=1_000_000)
    b.add_argument("--workers", type=_count, default=None,
                   help="benches made of jobs (phantom): local Dask worker processes (default: the cores; 0: here)")
    b.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run the bench's jobs on a running Dask scheduler")
    b.add_argument("-o", "--output", default="out/bench")
    b.set_defaults(func=cmd_bench)

    y = sub.add_parser("synth", help="synthesize (Yosys) and place and route (nextpnr): resources, Fmax, JSON")
    y.add_argument("engine", choices=engines)
    y.add_argument("--target", choices=["ecp5", "ice40", "generic"], default="generic")
    y.add_argument("--param", action="append", metavar="K=V", help="override a configuration field")
    y.add_argument("--freq", type=_positive, default=50.0, help="clock constraint for nextpnr, MHz")
    y.add_argument("--no-place", action="store_true", help="synthesis only, no place and route")
    y.add_argument("--timeout", type=_positive, default=3600, help="wall-clock limit per tool, seconds")
    y.add_argument("--check", action="store_true",
                   help="co-simulate the post-synthesis netlist against the golden model (generic target)")
    y.add_argument("--sim", choices=SIMULATORS, default="verilator", help="simulator of --check")
    y.add_argument("-o", "--output", default="out/synth")
    y.set_defaults(func=cmd_synth)

    fo = sub.add_parser("formal", help="prove the engines' formal properties (SymbiYosys, k-induction or bmc): "
                        "formal.json")
    fo.add_argument("engine", choices=["all"] + engines)
    fo.add_argument("--property", action="append", metavar="NAME", help="only this property; repeatable")
    fo.add_argument("--timeout", type=_positive, default=300, help="wall-clock limit per property, seconds")
    fo.add_argument("-o", "--output", default="out/formal")
    fo.set_defaults(func=cmd_formal)

    an = sub.add_parser("analog", help="analog in-SRAM multiplier studies (AID): JSON + plots")
    an.add_argument("what", choices=["aid"])
    an.add_argument("--mc", type=int, default=1000, help="Monte Carlo samples (>= 2)")
    an.add_argument("--spice", action="store_true", help="refit the model and measure SNR/energy in ngspice")
    an.add_argument("--study", action="store_true",
                    help="design-space study (L, W, VDD, pulse unit, swing; energy with ADC/DAC; mismatch sizing): "
                         "DIR/aid-study.json + plots; with --spice, ngspice spot checks at the key points")
    an.add_argument("--keep-spice", action="store_true", help="keep netlists, logs and raw files in DIR/spice")
    an.add_argument("--seed", type=_seed, default=0, help="Monte Carlo seed")
    an.add_argument("--images", type=int, default=None, help="digits test images for the network study "
                    "(default: all 360; 0 skips it)")
    an.add_argument("--workers", type=_count, default=None,
                    help="ngspice columns, Monte Carlo runs and the network study on N local Dask worker processes "
                         "(default: the cores; 0: in this process)")
    an.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run those jobs on a running Dask scheduler")
    an.add_argument("-o", "--output", default="out/analog")
    an.set_defaults(func=cmd_analog)

    k = sub.add_parser("cache", help="the build cache ($NNACCEL_CACHE): info (size, builds, runs, nets) or clean")
    k.add_argument("action", choices=["info", "clean"])
    k.set_defaults(func=cmd_cache)

    sw = sub.add_parser("sweep", help="design-space sweep on Dask (local cluster, or --scheduler): "
                        "points.parquet, summary.md, Pareto plot")
    sw.add_argument("spec", nargs="?", help="SPEC.toml (docs/sweeps.md)")
    sw.add_argument("-o", "--output", default="out/sweep")
    sw.add_argument("--workers", type=_count, default=None,
                    help="local worker processes (default: the cores; 0: in this process, one point at a time)")
    sw.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="a running Dask scheduler instead of a local cluster")
    sw.add_argument("--report", metavar="DIR", help="rebuild DIR's summary and plots from its table; run nothing")
    sw.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    sw.set_defaults(func=cmd_sweep)

    im = sub.add_parser("import", help="import a model (ONNX QDQ / QOperator, QONNX, file.py:factory) into an "
                        "integer graph and measure it against its own runtime")
    im.add_argument("model", help="MODEL.onnx or path/to/file.py:factory")
    im.add_argument("--data", metavar="DATA.npz", help="x (N x C x H x W float inputs) and optionally y (labels)")
    im.add_argument("--variant", choices=["int8", "sparse", "ternary"], default="int8",
                    help="quantization of float models (PyTorch, float ONNX)")
    im.add_argument("--sparsity", type=float, default=0.5, help="pruned fraction for --variant sparse")
    im.add_argument("--images", type=int, default=32, help="inputs per layer vector file")
    im.add_argument("-o", "--output", default="out/import")
    im.set_defaults(func=cmd_import)

    from flows.mutate import DEFAULT_SIM, DEFAULT_VECTORS, EQUIV_MODES, engines as mutate_engines
    mu = sub.add_parser("mutate", help="mutation testing of an engine's co-simulation checker (Yosys mutate, "
                        "MCY-like): score, survivors with their Amaranth source lines")
    mu.add_argument("engine", choices=mutate_engines())
    mu.add_argument("-n", type=_whole(1, None, "a whole number >= 1"), default=100,
                    help="mutations to list (mutate -list N; fewer if the design has fewer)")
    mu.add_argument("--workers", type=_count, default=None,
                    help="local Dask worker processes (default: the cores; 0: in this process)")
    mu.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run the mutants on a running Dask scheduler")
    mu.add_argument("--sim", choices=SIMULATORS, default=DEFAULT_SIM,
                    help=f"simulator (default {DEFAULT_SIM}: a mutant is a new build, and Icarus compiles in "
                         "a second where Verilator takes tens)")
    mu.add_argument("--vectors", type=_count, default=DEFAULT_VECTORS,
                    help=f"random vectors for suites that take them (requant, winograd; default {DEFAULT_VECTORS})")
    mu.add_argument("--seed", type=_seed, default=1, help="mutation sampling and stimulus seed, 0..2**32-1")
    mu.add_argument("--param", action="append", metavar="K=V", help="override a configuration field")
    mu.add_argument("--timeout", type=_positive, default=120, help="wall-clock limit per simulation, seconds")
    mu.add_argument("--equiv", choices=EQUIV_MODES, default="survivors",
                    help="formal equivalence check: of the survivors (default), of every mutant before it is "
                         "simulated (first), or none (off)")
    mu.add_argument("--equiv-timeout", type=_positive, default=120, help="limit per equivalence check, seconds")
    mu.add_argument("-o", "--output", default="out/mutate", help="writes DIR/mutate-ENGINE.json and .md")
    mu.set_defaults(func=cmd_mutate)
    return p


def main(argv: list[str] | None = None) -> int:
    from cosim.runner import CosimError, ToolMissing

    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UsageError as e:
        print(f"nnaccel: error: {e}", file=sys.stderr)
        return 2
    except ToolMissing as e:
        print(f"nnaccel: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"nnaccel: error: {e}", file=sys.stderr)
        return 2
    except (CosimError, ConnectionError) as e:
        print(f"nnaccel: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the machine, not the input: a full disk, a file system gone read-only
        print(f"nnaccel: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nnaccel: interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:  # --help
        return int(e.code or 0)


if __name__ == "__main__":
    sys.exit(main())
