"""Registry of the engines nnaccel can generate, and their configuration parsing.

Each engine is one configuration dataclass (the single source of truth for its
RTL generator, cycle model, testbench and report) plus a builder that turns a
configuration into an Amaranth component.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from amaranth.lib import wiring

from rtl.common.requant import Requantizer, RequantConfig
from rtl.fat.config import FatConfig
from rtl.fat.engine import FatEngine


@dataclass(frozen=True)
class EngineSpec:
    name: str
    summary: str
    config_cls: type
    build: Callable[[object], wiring.Component]

    def config(self, params: dict[str, str] | None = None):
        """A configuration from ``{name: text}`` overrides; ValueError names bad keys and values."""
        fields = {f.name: f for f in dataclasses.fields(self.config_cls)}
        values = {}
        for key, text in (params or {}).items():
            if key not in fields:
                valid = ", ".join(sorted(fields)) or "none"
                raise ValueError(f"unknown parameter {key!r} for engine {self.name} (valid: {valid})")
            default = fields[key].default
            try:
                if isinstance(default, bool):
                    if str(text).lower() not in ("0", "1", "true", "false"):
                        raise ValueError
                    values[key] = str(text).lower() in ("1", "true")
                else:
                    values[key] = type(default)(text)
            except (TypeError, ValueError):
                raise ValueError(f"parameter {key} of engine {self.name} must be "
                                 f"{type(default).__name__}, not {text!r}") from None
        return self.config_cls(**values)


ENGINES: dict[str, EngineSpec] = {
    "requant": EngineSpec(
        name="requant",
        summary="streaming int32 -> int8 requantizer (TFLite double rounding), shared by every engine",
        config_cls=RequantConfig,
        build=Requantizer,
    ),
    "fat": EngineSpec(
        name="fat",
        summary="FAT ternary in-memory-computing subarray with a Sparse Addition Control Unit",
        config_cls=FatConfig,
        build=FatEngine,
    ),
}

from rtl.winograd import WinogradConfig, WinogradEngine  # noqa: E402  (issue 5)
ENGINES["winograd"] = EngineSpec(
    name="winograd",
    summary="int8 Winograd F(2x2,3x3) / F(4x4,3x3) 3x3 stride-1 convolution, integer-exact, pipelined",
    config_cls=WinogradConfig,
    build=WinogradEngine,
)

from rtl.phantom.config import PhantomConfig  # noqa: E402  (issue 4)
from rtl.phantom.core import PhantomCore  # noqa: E402
ENGINES["phantom"] = EngineSpec(
    name="phantom",
    summary="Phantom sparse core: T threads, binary-mask lookahead over (mask, packed non-zeros) chunks",
    config_cls=PhantomConfig,
    build=PhantomCore,
)

from rtl.phantom.config import Phantom2DConfig  # noqa: E402  (issue 4)
from rtl.phantom.mesh import PhantomMesh  # noqa: E402
ENGINES["phantom2d"] = EngineSpec(
    name="phantom2d",
    summary="Phantom-2D mesh of Phantom cores: row operand broadcast, per-core queues, tagged output collection",
    config_cls=Phantom2DConfig,
    build=PhantomMesh,
)


def get_engine(name: str) -> EngineSpec:
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r} (valid: {', '.join(sorted(ENGINES))})")
    return ENGINES[name]
