"""The engine table: every engine nnaccel can generate, registered once, and the
protocol every engine answers.

An engine is one folder, ``rtl/<package>/``, with the same rooms:

``config.py``
    the configuration dataclass (the single source of truth for the RTL, mapper,
    cycle model, testbench and report), its word layouts and opcodes;
the component module
    the Amaranth ``wiring.Component`` built from a configuration;
``mapper.py``
    ``maps(layer, config) -> None | str`` -- can the engine run this layer, and if
    not, why (one line), decided from the layer's description and weights without
    simulating -- and ``plan(layer, config, **options) -> Plan``, the layer turned
    into the engine's input words and expected outputs;
``model.py``
    ``cycles(plan) -> dict``: the cycle model's figures for a plan (``"cycles"``
    and every counter the RTL reports that the model predicts); fast models beside it;
``energy.py`` (where the engine has an energy table)
    ``energy(counters, config) -> dict``.

Its co-simulation lives in ``cosim/testbenches/<name>.py`` and its benchmark (if
any) in ``cosim/benches/``, found by the engine's name (:mod:`cosim.engines`).
Every command's engine choices come from :data:`ENGINES`;
``tests/test_engine_protocol.py`` walks the table and asks every engine every
question. ``docs/adding-an-engine.md`` says how to add one.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from types import ModuleType

from golden.errors import NotMapped


@dataclass(frozen=True)
class Engine:
    """One row of the table: the engine's name, a one-line summary, its configuration
    class, its component class (built from a configuration) and its package."""
    name: str
    summary: str
    config_cls: type
    component: type
    package: str  # rtl.<folder>: its config, mapper, model (and energy) modules

    # --- configuration --------------------------------------------------------------
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

    def build(self, config=None):
        """The Amaranth component for ``config`` (default configuration when None)."""
        return self.component(config if config is not None else self.config_cls())

    # --- the protocol ---------------------------------------------------------------
    def room(self, name: str) -> ModuleType | None:
        """The engine's module ``rtl.<package>.<name>``, or None when it has no such room."""
        try:
            return importlib.import_module(f"{self.package}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{self.package}.{name}":
                raise
            return None

    def maps(self, layer, config=None) -> str | None:
        """None when the engine can run ``layer`` (a :class:`golden.layer.LayerVectors`), else why not."""
        return self.room("mapper").maps(layer, config if config is not None else self.config_cls())

    def plan(self, layer, config=None, **options):
        """``layer`` as the engine's plan (input words, expected outputs); NotMapped with the reason."""
        config = config if config is not None else self.config_cls()
        why = self.maps(layer, config)
        if why:
            raise NotMapped(why)
        return self.room("mapper").plan(layer, config, **options)

    def cycles(self, plan) -> dict:
        """The cycle model's figures for ``plan``: ``cycles`` and the counters it predicts."""
        return self.room("model").cycles(plan)

    @property
    def runs_layers(self) -> bool:
        """Whether the engine runs network layers at all (its mapper says ``RUNS_LAYERS =
        False`` when it runs none, as the AID controller: then only synthesis is asked of it)."""
        room = self.room("mapper")
        return room is not None and getattr(room, "RUNS_LAYERS", True)

    @property
    def has_energy(self) -> bool:
        return self.room("energy") is not None

    def energy(self, counters: dict, config=None) -> dict | None:
        """Energy from the RTL's counters, or None for an engine without an energy table."""
        room = self.room("energy")
        return None if room is None else room.energy(counters, config if config is not None else self.config_cls())


ENGINES: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    """Add ``engine`` to the table; a name registered twice is an error."""
    if engine.name in ENGINES:
        raise ValueError(f"engine {engine.name!r} is registered already")
    ENGINES[engine.name] = engine
    return engine


def get_engine(name: str) -> Engine:
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r} (valid: {', '.join(ENGINES)})")
    return ENGINES[name]


def _register_all() -> None:
    from rtl.aid.config import AidControllerConfig
    from rtl.aid.controller import AidController
    from rtl.fat.config import FatConfig
    from rtl.fat.engine import FatEngine
    from rtl.phantom.config import PhantomConfig
    from rtl.phantom.core import PhantomCore
    from rtl.phantom2d.config import Phantom2DConfig
    from rtl.phantom2d.mesh import PhantomMesh
    from rtl.requant.config import RequantConfig
    from rtl.requant.requantizer import Requantizer
    from rtl.winograd.config import WinogradConfig
    from rtl.winograd.engine import WinogradEngine

    for row in (
        ("requant", "streaming int32 -> int8 requantizer (TFLite double rounding), shared by every engine",
         RequantConfig, Requantizer, "rtl.requant"),
        ("fat", "FAT ternary in-memory-computing subarray with a Sparse Addition Control Unit",
         FatConfig, FatEngine, "rtl.fat"),
        ("phantom", "Phantom sparse core: T threads, binary-mask lookahead over (mask, packed non-zeros) chunks",
         PhantomConfig, PhantomCore, "rtl.phantom"),
        ("phantom2d", "Phantom-2D mesh of Phantom cores: row operand broadcast, per-core queues, tagged outputs",
         Phantom2DConfig, PhantomMesh, "rtl.phantom2d"),
        ("winograd", "int8 Winograd F(2x2,3x3) / F(4x4,3x3) 3x3 stride-1 convolution, integer-exact, pipelined",
         WinogradConfig, WinogradEngine, "rtl.winograd"),
        ("aid", "AID analog in-SRAM multiplier controller: DAC codes, binary-weighted word-line pulses, ADC",
         AidControllerConfig, AidController, "rtl.aid"),
    ):
        register(Engine(*row))


_register_all()
