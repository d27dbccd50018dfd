import re
from pathlib import Path

import pytest

from rtl.export import generate


def mutate(verilog: str, pattern: str, replacement: str) -> str:
    """Replace exactly one occurrence of ``pattern`` (regex) in the Verilog; fail if absent."""
    out, n = re.subn(pattern, replacement, verilog, count=1)
    assert n == 1, f"mutation pattern {pattern!r} not found"
    return out


@pytest.fixture(scope="session")
def requant_design():
    return generate("requant")


@pytest.fixture
def mutated_requant(tmp_path, requant_design):
    """Write a mutant of the generated requantizer and return its path."""
    def make(pattern, replacement):
        p = tmp_path / "requant_mutant.v"
        p.write_text(mutate(requant_design.verilog, pattern, replacement))
        return p
    return make
