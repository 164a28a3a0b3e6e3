"""Loading an implementation under test, and calling it safely.

An implementation is named by the short name of a bundled one (``manual``, ``numpy``,
``torch_autograd``, ``torch_sgd``), by ``module:callable`` or by ``path/to/file.py:callable``.
It follows the step protocol (``neuronspec.implementations``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from reference.step import INPUTS, OPTIONAL, REQUIRED

from ..errors import ImplementationError, LoadError
from .bundled import BUNDLED, bundled_module

__all__ = ["Implementation", "BatchOutputs", "load"]


class BatchOutputs(dict):
    """Quantity -> float64 array, all rows of one (quantities, cases) array ``block``."""

    def __init__(self, items, block) -> None:
        super().__init__(items)
        self.block = block


def _returned(out: Mapping) -> tuple[str, ...]:
    return REQUIRED + tuple(k for k in OPTIONAL if k in out)


@dataclass(frozen=True)
class Implementation:
    """A Python implementation under test: its step callable (and batch callable, if any)."""

    name: str
    step: Callable[..., Mapping[str, Any]]
    origin: str  # module or file it came from
    spec: str = ""  # how it was named, for replay commands
    batch: "Callable[..., Mapping[str, Any]] | None" = None  # the batch protocol, if offered

    def __call__(self, fmt: str, case: tuple) -> dict[str, float]:
        """Run the step on one case; raises NotImplementedError (unsupported format) or
        ImplementationError (exception, missing key, value not convertible with float())."""
        w, b, x, t, lr = case
        try:
            out = self.step(w, b, x, t, lr, fmt)
        except NotImplementedError:
            raise
        except Exception as exc:
            raise ImplementationError(f"{self.name} raised {type(exc).__name__}: {exc}",
                                      overflow=isinstance(exc, ArithmeticError)) from exc
        if not isinstance(out, Mapping):
            raise ImplementationError(
                f"{self.name} returned {type(out).__name__}, not a mapping of the quantities "
                f"{', '.join(REQUIRED)}")
        missing = [k for k in REQUIRED if k not in out]
        if missing:
            raise ImplementationError(f"{self.name} returned no {', '.join(missing)} "
                                      f"(it must return {', '.join(REQUIRED)})")
        values = {}
        for key in _returned(out):
            try:
                values[key] = float(out[key])
            except (TypeError, ValueError) as exc:
                raise ImplementationError(
                    f"{self.name} returned {key} = {out[key]!r}, which float() rejects ({exc})"
                ) from None
        return values

    def run_batch(self, fmt: str, cases: Mapping[str, Any]) -> BatchOutputs:
        """Run the batch callable on arrays ``cases`` (w, b, x, t, lr); returns float arrays of
        the quantities, or raises NotImplementedError / ImplementationError (one line)."""
        import numpy as np

        if self.batch is None:
            raise ImplementationError(f"{self.name} offers no batch callable")
        n = len(cases["w"])
        try:
            out = self.batch(*(cases[k] for k in INPUTS), fmt)
        except NotImplementedError:
            raise
        except Exception as exc:
            raise ImplementationError(
                f"{self.name} batch raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(out, Mapping):
            raise ImplementationError(f"{self.name} batch returned {type(out).__name__}, not a "
                                      f"mapping of arrays {', '.join(REQUIRED)}")
        missing = [k for k in REQUIRED if k not in out]
        if missing:
            raise ImplementationError(f"{self.name} batch returned no {', '.join(missing)}")
        keys = _returned(out)
        block = np.empty((len(keys), n))  # one float64 row per quantity, for the batch reference
        for j, key in enumerate(keys):
            try:
                arr = np.asarray(out[key])
                if arr.shape != (n,):
                    raise ImplementationError(
                        f"{self.name} batch returned {key} of shape {arr.shape}, expected "
                        f"({n},): one value per case")
                block[j] = arr
            except (TypeError, ValueError) as exc:
                raise ImplementationError(
                    f"{self.name} batch returned {key} that is not a float array ({exc})") from None
        return BatchOutputs(zip(keys, block), block=block)

    def version(self) -> str:
        """The implementation's package version, where one can be found (for a bundled one,
        the library it exercises)."""
        top = self.origin.split(".")[0]
        for candidate in ("torch" if "torch" in self.name else None,
                          "numpy" if "numpy" in self.name else None, top):
            if not candidate:
                continue
            module = sys.modules.get(candidate)
            if module is not None and getattr(module, "__version__", None):
                return f"{candidate} {module.__version__}"
        return "unknown"


def load(spec: str) -> Implementation:
    """Load ``spec``: a bundled short name, ``module:callable`` or ``file.py:callable``."""
    if spec in BUNDLED:
        module = bundled_module(spec)
        return Implementation(spec, module.step, BUNDLED[spec][0], spec,
                              getattr(module, "step_batch", None))
    if ":" not in spec:
        raise LoadError(
            f"cannot load implementation {spec!r}: use a bundled name ({', '.join(BUNDLED)}), "
            "module:callable or path/to/file.py:callable")
    where, _, attr = spec.rpartition(":")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where)
        if not path.is_file():
            raise LoadError(f"cannot load implementation {spec!r}: no file {path}")
        name = f"_neuronspec_impl_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            raise LoadError(f"cannot load implementation {spec!r}: importing {path} raised "
                            f"{type(exc).__name__}: {exc}") from None
        origin = str(path)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise LoadError(f"cannot load implementation {spec!r}: importing {where} raised "
                            f"{type(exc).__name__}: {exc}") from None
        origin = where
    step = getattr(module, attr, None)
    if step is None or not callable(step):
        raise LoadError(f"cannot load implementation {spec!r}: {origin} has no callable {attr!r}")
    label = Path(where).stem if origin.endswith(".py") else where.rsplit(".", 1)[-1]
    batch = getattr(module, f"{attr}_batch", None)
    return Implementation(f"{label}:{attr}" if attr != "step" else label, step, origin, spec,
                          batch if callable(batch) else None)
