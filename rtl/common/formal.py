"""What every engine's formal properties share (``rtl/<engine>/formal.py``).

A property is a wrapper ``Elaboratable`` around the unmodified component: the
wrapper instantiates it, leaves its inputs free (top-level ports, any value in any
cycle) except where an ``Assume`` restricts them, and states the property with
``Assert`` on its outputs (and, for white-box properties, on internal signals read
from the elaborated component by name, :func:`elaborated`). ``cosim.formal`` writes
the wrapper as RTLIL and proves it with SymbiYosys; nothing here imports a tool.
:class:`Property` is the record of one property; :class:`StreamHoldTop` the stream
rule on any engine's output port (:func:`stream_out_checks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from amaranth.hdl import Assert, Assume, Elaboratable, Module, ResetSignal, Signal, Value
from amaranth.hdl._ir import Fragment

METHODS = ("prove", "bmc")


@dataclass(frozen=True)
class Property:
    """One formal property: what it says, how to build its wrapper, how to check it.

    name     ``engine.what``, unique over every engine
    engine   the engine's name in :data:`rtl.engines.ENGINES`
    summary  one line: what is asserted, under which assumptions
    build    ``() -> FormalTop``: the wrapper around the component
    method   "prove" (k-induction with k = ``depth``, base case to the same depth) or
             "bmc" (bounded: no counterexample in ``depth`` cycles from reset)
    depth    k or the bound
    config   the configuration the component is built with (``{field: value}``)
    """
    name: str
    engine: str
    summary: str
    build: Callable[[], "FormalTop"]
    method: str
    depth: int
    config: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method of {self.name} must be one of {', '.join(METHODS)}, not {self.method!r}")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"depth of {self.name} must be a positive integer, not {self.depth!r}")


class FormalTop(Elaboratable):
    """Base of the property wrappers.

    ``free(sig, ...)`` marks the component's inputs that the solver may drive (they
    become the top-level ports of the RTLIL); ``elaborate`` adds the global
    assumptions (reset never asserted after the initial state, which is the reset
    state) and calls ``properties(m)``. ``assert_(m, cond)`` and ``assume(m, cond)``
    put the checks in the comb domain; ``past(m, value)`` is ``value`` one cycle
    earlier and ``started`` is high from the second cycle on."""

    def __init__(self):
        self._free: list[Value] = []

    def free(self, *values) -> None:
        for v in values:
            self._free.append(Value.cast(v))

    @property
    def ports(self) -> list:
        return list(self._free)

    def past(self, m: Module, value, name: str | None = None) -> Signal:
        # call it outside ``with m.If``: the register must load in every cycle
        value = Value.cast(value)
        reg = Signal(value.shape(), name=name)
        m.d.sync += reg.eq(value)
        return reg

    def elaborate(self, platform):
        m = Module()
        self.started = Signal(name="started")
        m.d.sync += self.started.eq(1)
        m.d.comb += Assume(~ResetSignal("sync"))
        self.properties(m)
        return m

    def properties(self, m: Module) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def assert_(m: Module, cond, message: str | None = None) -> None:
        m.d.comb += Assert(cond, message, src_loc_at=1)

    @staticmethod
    def assume(m: Module, cond) -> None:
        m.d.comb += Assume(cond, src_loc_at=1)

    def hold_static(self, m: Module, *ports) -> None:
        """Assume ``ports`` (static inputs: zero point, clamp) never change."""
        for p in ports:
            prev = self.past(m, p)
            with m.If(self.started):
                m.d.comb += Assume(Value.cast(p) == prev)


def elaborated(component) -> tuple[Fragment, dict[str, Signal]]:
    """The component elaborated once, and its signals by name (for white-box
    properties: add the fragment as the submodule, read the signals)."""
    frag = Fragment.get(component, None)
    signals: dict[str, Signal] = {}

    def walk(f, prefix):
        for stmts in f.statements.values():
            for st in stmts:
                for s in list(st._lhs_signals()) + list(st._rhs_signals()):
                    signals.setdefault(prefix + s.name, s)
        for sub, name, _loc in f.subfragments:
            walk(sub, f"{prefix}{name}.")
    walk(frag, "")
    return frag, signals


def state_codes(state: Signal) -> dict[str, int]:
    """``{state name: code}`` of an Amaranth FSM's state signal (from its decoder)."""
    out = {}
    for n in range(1 << len(state)):
        try:
            out[state.decoder(n).rpartition("/")[0]] = n
        except KeyError:
            pass
    return out


def stream_out_checks(top: FormalTop, m: Module, o) -> None:
    """The stream rule on output port ``o``: an offered payload (``valid & ~ready``)
    is offered again, unchanged, in the next cycle."""
    stalled = top.past(m, o.valid & ~o.ready, name="past_stalled")
    payload = top.past(m, o.payload, name="past_payload")
    with m.If(top.started & stalled):
        top.assert_(m, o.valid, "o.valid dropped while not accepted")
        top.assert_(m, Value.cast(o.payload) == payload, "o.payload changed while not accepted")


class StreamHoldTop(FormalTop):
    """Any engine with stream ports ``i`` and ``o``: every input port free (the stream's
    valid and payload, ``o.ready`` and the outputs' ready in any cycle; the other
    inputs, the statics, free but held), and the stream rule asserted on ``o``.
    ``make`` builds the component (a broken one, for the tests). ``lockstep``: internal
    signals (``elaborated`` names) asserted equal in every cycle, the inductive
    strengthening of an engine whose output lanes move together."""

    def __init__(self, make, statics=("zero_point", "act_min", "act_max", "input_zero_point"),
                 lockstep: tuple[str, ...] = ()):
        super().__init__()
        self.dut = make()
        self.lockstep = lockstep
        self.statics = [getattr(self.dut, n) for n in statics if hasattr(self.dut, n)]
        d = self.dut
        self.free(d.i.valid, d.i.payload, d.o.ready, *self.statics)

    def properties(self, m):
        d = self.dut
        if self.lockstep:
            frag, g = elaborated(d)
            m.submodules.dut = frag
            first = g[self.lockstep[0]]
            for name in self.lockstep[1:]:
                self.assert_(m, g[name] == first, "output lanes out of step")
        else:
            m.submodules.dut = d
        self.hold_static(m, *self.statics)
        stream_out_checks(self, m, d.o)
