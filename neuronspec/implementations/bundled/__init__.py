"""The implementations bundled with neuronspec, by short name.

Each module here is self-contained (it imports nothing from neuronspec or the reference), so it
can also be loaded as ``path/to/file.py:step``; each follows the step protocol and, where it can,
the batch protocol (``neuronspec.implementations``) and the run forms ``step_run`` and
``step_from`` (spec/protocol.md, "Runs")."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from ...errors import LoadError

__all__ = ["BUNDLED", "CALLABLES", "ImplementationUnavailable", "bundled_module", "callable_of",
           "library_of", "available"]

#: short name -> (module, one-line description)
BUNDLED: dict[str, tuple[str, str]] = {
    "manual": (f"{__name__}.manual",
               "the seed's manual code in Python floats (float64 only, loss via **2)"),
    "numpy": (f"{__name__}.numpy_scalar",
              "the seed's formulas in numpy scalars (float16, float32, float64)"),
    "torch_autograd": (f"{__name__}.torch_autograd",
                       "torch autograd, manual update under no_grad (needs the torch extra)"),
    "torch_sgd": (f"{__name__}.torch_sgd",
                  "torch autograd, update by torch.optim.SGD.step() (needs the torch extra)"),
    "torch_sgd_foreach": (f"{__name__}.torch_sgd",
                          "torch autograd, update by torch.optim.SGD(foreach=True).step() "
                          "(needs the torch extra)"),
    "torch_sgd_fused": (f"{__name__}.torch_sgd",
                        "torch autograd, update by torch.optim.SGD(fused=True).step() "
                        "(needs the torch extra)"),
}


#: The step callable of a bundled implementation whose module offers several (the run forms
#: are found beside it by suffix: ``foreach_step_run``, ...); ``step`` for the others.
CALLABLES: dict[str, str] = {"torch_sgd_foreach": "foreach_step", "torch_sgd_fused": "fused_step"}


def callable_of(name: str) -> str:
    """The name of a bundled implementation's step callable in its module."""
    return CALLABLES.get(name, "step")


class ImplementationUnavailable(LoadError):
    """A bundled implementation whose optional dependency is not installed."""


def bundled_module(name: str) -> ModuleType:
    """The module of a bundled implementation; a clear error if it cannot load."""
    try:
        module_name, _ = BUNDLED[name]
    except KeyError:
        raise LoadError(f"unknown bundled implementation {name!r}; choose one of "
                        f"{', '.join(BUNDLED)}") from None
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ImplementationUnavailable(
            f"{name} needs the {exc.name!r} package: pip install 'neuronspec[{exc.name}]'"
        ) from None


def library_of(name: str) -> "str | None":
    """The package a bundled implementation exercises (None: plain Python floats)."""
    return "torch" if "torch" in name else "numpy" if "numpy" in name else None


def available(name: str) -> None:
    """Raise what :func:`bundled_module` would for a missing dependency, without importing
    the implementation (a supervised one is imported by its own process)."""
    if name not in BUNDLED:
        bundled_module(name)  # the error for an unknown name
    library = library_of(name)
    if library is not None and importlib.util.find_spec(library) is None:
        raise ImplementationUnavailable(
            f"{name} needs the {library!r} package: pip install 'neuronspec[{library}]'")
