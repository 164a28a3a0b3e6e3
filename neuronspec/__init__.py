"""neuronspec: a property-based test and reference-specification suite for one gradient-descent
step of a single neuron.

The tool: it generates cases (``cases``), loads and supervises the implementations under test
(``implementations``), runs checks, sweeps and soundness campaigns (``runs``), writes reports,
tables, plots and records (``artefacts``), and ships a pytest plugin (``plugin``).  The truth it
judges by is the ``reference`` package, which imports nothing from here.

The small public API::

    from neuronspec import load, check, cases
    report = check([load("path/to/impl.py:step")], formats=["float32"])
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "check", "cases", "NeuronspecError"]


def __getattr__(name: str):
    # resolved on first use, so that ``import neuronspec`` (the pytest plugin's import) stays
    # cheap and imports neither hypothesis's strategies nor the runs
    if name == "load":
        from .implementations import load
        return load
    if name == "check":
        from .runs.check import check
        return check
    if name == "cases":
        from .cases.strategies import cases
        return cases
    if name == "NeuronspecError":
        from .errors import NeuronspecError
        return NeuronspecError
    raise AttributeError(f"module 'neuronspec' has no attribute {name!r}")
