"""What every engine's formal properties share (``rtl/<engine>/formal.py``).

A property is a wrapper ``Elaboratable`` around the unmodified component: the
wrapper instantiates it, leaves its inputs free (top-level ports, any value in any
cycle) except where an ``Assume`` restricts them, and states the property with
``Assert`` on its outputs (and, for white-box properties, on internal signals read
from the elaborated component by name, :func:`elaborated`). ``cosim.formal`` writes
the wrapper as RTLIL and proves it with SymbiYosys; nothing here imports a tool.
:class:`Property` is the record of one property; :class:`StreamHoldTop` the stream
rule on any engine's output port (:func:`stream_out_checks`); :func:`stream_count_checks`
the in/out counting of any engine's stream ports (nothing lost, nothing duplicated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from amaranth.hdl import Assert, Assume, Const, Elaboratable, Module, ResetSignal, Signal, Value
from amaranth.hdl._ir import Fragment

METHODS = ("prove", "bmc")

# ``Property.cut`` for the data multipliers: ``$mul`` cells with both operands 8 bits or
# wider (the requantizers', Phantom's and Winograd's products), not the small index
# arithmetic (``word_select`` offsets, row addresses) that control depends on.
CUT_MULTIPLIERS = ("t:$mul r:A_WIDTH>=8 %i r:B_WIDTH>=8 %i",)


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
    cut      Yosys selections whose cells become free values in every cycle (``cutpoint``
             after ``prep``), e.g. :data:`CUT_MULTIPLIERS`: the data multipliers, where a property does
             not depend on what they compute (counting) or assumes their proven range
    """
    name: str
    engine: str
    summary: str
    build: Callable[[], "FormalTop"]
    method: str
    depth: int
    config: dict = field(default_factory=dict)
    cut: tuple[str, ...] = ()

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


def elaborated(component) -> tuple[Fragment, dict]:
    """The component elaborated once, and its signals by name (for white-box
    properties: add the fragment as the submodule, read the signals). A submodule's own
    object is there too, under its path without a trailing dot (``"core_0_1"``), so its
    ports are read as attributes (``g["core_0_1"].i.valid``): port signals go by the
    same name in the parent and the child (``i__valid``), so by name they are ambiguous."""
    frag = Fragment.get(component, None)
    signals: dict[str, Signal] = {}

    def walk(f, prefix):
        for stmts in f.statements.values():
            for st in stmts:
                for s in list(st._lhs_signals()) + list(st._rhs_signals()):
                    signals.setdefault(prefix + s.name, s)
        for sub, name, _loc in f.subfragments:
            origins = getattr(sub, "origins", None) or ()
            if origins:
                signals.setdefault(f"{prefix}{name}", origins[0])
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


def stream_out_checks(top: FormalTop, m: Module, o, name: str = "o") -> None:
    """The stream rule on output port ``o`` (anything with ``valid``, ``ready`` and
    ``payload``; ``name`` in the messages): an offered payload (``valid & ~ready``) is
    offered again, unchanged, in the next cycle."""
    stalled = top.past(m, o.valid & ~o.ready, name=f"past_stalled_{name}")
    payload = top.past(m, o.payload, name=f"past_payload_{name}")
    with m.If(top.started & stalled):
        top.assert_(m, o.valid, f"{name}.valid dropped while not accepted")
        top.assert_(m, Value.cast(o.payload) == payload, f"{name}.payload changed while not accepted")


class EngineTop(FormalTop):
    """An engine with stream ports ``i`` and ``o`` as the solver's: the stream's valid and
    payload and ``o.ready`` free in any cycle, the static inputs (those of ``statics`` the
    engine has) free but held. ``enter(m)`` puts the engine in ``m`` and returns its
    internal signals by name (``elaborated``)."""

    STATICS = ("zero_point", "act_min", "act_max", "input_zero_point")

    def __init__(self, dut, statics=STATICS):
        super().__init__()
        self.dut = dut
        self.statics = [getattr(dut, n) for n in statics if hasattr(dut, n)]
        self.free(dut.i.valid, dut.i.payload, dut.o.ready, *self.statics)

    def enter(self, m: Module, hold: bool = True) -> dict:
        frag, g = elaborated(self.dut)
        m.submodules.dut = frag
        if hold:
            self.hold_static(m, *self.statics)
        return g


class StreamHoldTop(EngineTop):
    """Any engine: the stream rule asserted on ``o`` (see ``EngineTop``). ``make`` builds
    the component (a broken one, for the tests). ``lockstep``: internal signals
    (``elaborated`` names) asserted equal in every cycle, the inductive strengthening of
    an engine whose output lanes move together."""

    def __init__(self, make, statics=EngineTop.STATICS, lockstep: tuple[str, ...] = ()):
        super().__init__(make(), statics)
        self.lockstep = lockstep

    def properties(self, m):
        d = self.dut
        if self.lockstep:
            g = self.enter(m)
            first = g[self.lockstep[0]]
            for name in self.lockstep[1:]:
                self.assert_(m, g[name] == first, "output lanes out of step")
        else:
            m.submodules.dut = d
            self.hold_static(m, *self.statics)
        stream_out_checks(self, m, d.o)


def popcount(value) -> Value:
    """The number of set bits of ``value`` (an adder expression)."""
    value = Value.cast(value)
    return sum((value[k] for k in range(len(value))), Const(0, 1))


def stream_count_checks(top: FormalTop, m: Module, o, *, incoming, held, capacity: int, max_incoming: int = 1,
                        outgoing=None, name: str = "owed") -> Signal:
    """In/out counting on an engine's stream ports: a monitor counter ``owed`` of the
    outputs the engine owes, up by ``incoming`` (outputs the inputs accepted this cycle
    will make, at most ``max_incoming``), down by ``outgoing`` (outputs taken on ``o``
    this cycle; default ``o.valid & o.ready``). Asserted in every cycle:

    * ``outgoing <= owed``: no output from nowhere and none twice (no underflow);
    * ``owed <= capacity``: the engine never owes more than it can hold, so an input
      that should make an output was not dropped while the engine kept accepting;
    * ``owed == held``: the inductive strengthening, ``held`` being the outputs the
      engine's internal state holds (pending commands, queued chunks, pipeline valid
      bits: white box). It also catches a loss at once (``held`` falls, ``owed`` not).

    No output leaves in the cycle its input is accepted (every engine registers its
    inputs), so ``outgoing`` is compared with ``owed`` before this cycle's inputs.
    Returns the counter."""
    outgoing = Value.cast(o.valid & o.ready) if outgoing is None else Value.cast(outgoing)
    top_value = capacity + max_incoming
    owed = Signal(range(top_value + 1), name=name)
    nxt = Signal(range(-top_value - 2, top_value + 2), name=f"{name}_next")
    m.d.comb += nxt.eq(owed + incoming - outgoing)
    m.d.sync += owed.eq(nxt)
    top.assert_(m, outgoing <= owed, "an output with none owed: duplicated or from nowhere")
    top.assert_(m, owed <= capacity, "more outputs owed than the engine can hold: one was lost")
    if held is not None:
        top.assert_(m, owed == held, "outputs owed differ from the outputs the engine holds")
    return owed
