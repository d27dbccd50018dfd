"""The errors every layer of nnaccel raises, in the bottom package so that all can import them.

``golden`` imports nothing else of nnaccel; ``rtl``, ``analog``, ``cosim`` and
``flows`` import these classes from here (``cosim.runner`` re-exports the first
three for its callers). Each message is one line for the user.
"""

from __future__ import annotations


class CosimError(Exception):
    """A simulation (or an external tool run) could not be built or run."""


class ToolMissing(CosimError):
    """A tool nnaccel needs is not installed; the message names its install command."""


class SimTimeout(CosimError):
    """A simulation or tool run hit its wall-clock limit."""


class NotMapped(ValueError):
    """An engine cannot run this layer; the message says why (kernel, stride, weight values, widths, ...)."""
