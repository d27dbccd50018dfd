"""Port set shared by the engines that stream commands in and int8 results out."""

from __future__ import annotations

from amaranth.hdl import signed
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out


def int8_engine_ports(in_layout, stats=()) -> dict:
    """``i`` (commands or chunks), ``o`` (int8 results), the requantizer's statics
    (``zero_point``, ``act_min``, ``act_max``) and one 32-bit ``stat_<name>`` counter
    output per name (the co-simulation harness reports every ``stat_*`` port)."""
    ports = {
        "i": In(stream.Signature(in_layout)),
        "o": Out(stream.Signature(signed(8))),
        "zero_point": In(signed(8)),
        "act_min": In(signed(8)),
        "act_max": In(signed(8)),
    }
    ports.update({f"stat_{name}": Out(32) for name in stats})
    return ports
