"""The bundled implementations under test, by short name."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

__all__ = ["BUNDLED", "ImplementationUnavailable", "load_bundled", "StepFunction"]

StepFunction = Callable[..., Mapping[str, Any]]

#: short name -> (module, one-line description)
BUNDLED: dict[str, tuple[str, str]] = {
    "manual": ("reference.implementations.manual",
               "the seed's manual code in Python floats (float64 only, loss via **2)"),
    "numpy": ("reference.implementations.numpy_scalar",
              "the seed's formulas in numpy scalars (float16, float32, float64)"),
    "torch_autograd": ("reference.implementations.torch_autograd",
                       "torch autograd, manual update under no_grad (needs the torch extra)"),
    "torch_sgd": ("reference.implementations.torch_sgd",
                  "torch autograd, update by torch.optim.SGD.step() (needs the torch extra)"),
}


class ImplementationUnavailable(RuntimeError):
    """A bundled implementation whose optional dependency is not installed."""


def load_bundled(name: str) -> StepFunction:
    """The ``step`` callable of a bundled implementation; a clear error if it cannot load."""
    try:
        module_name, _ = BUNDLED[name]
    except KeyError:
        raise ValueError(
            f"unknown bundled implementation {name!r}; choose one of {', '.join(BUNDLED)}"
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ImplementationUnavailable(
            f"{name} needs the {exc.name!r} package: pip install 'neuronspec[{exc.name}]'"
        ) from None
    return module.step
