"""Loading an implementation under test, and calling it safely.

An implementation is named by the short name of a bundled one (``manual``, ``numpy``,
``torch_autograd``, ``torch_sgd``), by ``module:callable`` or by ``path/to/file.py:callable``.
It follows the step protocol (``reference/implementations/__init__.py``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .bundled import BUNDLED, ImplementationUnavailable, load_bundled

__all__ = ["Implementation", "ImplementationError", "LoadError", "load", "REQUIRED_KEYS"]

REQUIRED_KEYS = ("y", "loss", "dL_dw", "dL_db", "w_new", "b_new")


class BatchOutputs(dict):
    """Quantity -> float64 array, all rows of one (quantities, cases) array ``block``."""

    def __init__(self, items, block) -> None:
        super().__init__(items)
        self.block = block


class LoadError(ValueError):
    """An implementation that cannot be loaded (one clear line)."""


class ImplementationError(RuntimeError):
    """An implementation that raised or returned something unusable on a case."""


@dataclass(frozen=True)
class Implementation:
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
            raise ImplementationError(f"{self.name} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(out, Mapping):
            raise ImplementationError(
                f"{self.name} returned {type(out).__name__}, not a mapping of the quantities "
                f"{', '.join(REQUIRED_KEYS)}")
        missing = [k for k in REQUIRED_KEYS if k not in out]
        if missing:
            raise ImplementationError(f"{self.name} returned no {', '.join(missing)} "
                                      f"(it must return {', '.join(REQUIRED_KEYS)})")
        values = {}
        for key in REQUIRED_KEYS + (("dL_dy",) if "dL_dy" in out else ()):
            try:
                values[key] = float(out[key])
            except (TypeError, ValueError) as exc:
                raise ImplementationError(
                    f"{self.name} returned {key} = {out[key]!r}, which float() rejects ({exc})"
                ) from None
        return values

    def run_batch(self, fmt: str, cases: Mapping[str, Any]) -> dict:
        """Run the batch callable on arrays ``cases`` (w, b, x, t, lr); returns float arrays of
        the quantities, or raises NotImplementedError / ImplementationError (one line)."""
        import numpy as np

        if self.batch is None:
            raise ImplementationError(f"{self.name} offers no batch callable")
        n = len(cases["w"])
        try:
            out = self.batch(*(cases[k] for k in ("w", "b", "x", "t", "lr")), fmt)
        except NotImplementedError:
            raise
        except Exception as exc:
            raise ImplementationError(
                f"{self.name} batch raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(out, Mapping):
            raise ImplementationError(f"{self.name} batch returned {type(out).__name__}, not a "
                                      f"mapping of arrays {', '.join(REQUIRED_KEYS)}")
        missing = [k for k in REQUIRED_KEYS if k not in out]
        if missing:
            raise ImplementationError(f"{self.name} batch returned no {', '.join(missing)}")
        keys = REQUIRED_KEYS + (("dL_dy",) if "dL_dy" in out else ())
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
        """The implementation's package version, where one can be found."""
        top = self.origin.split(".")[0]
        for candidate in (top, "torch" if "torch" in self.name else None, "numpy"
                          if "numpy" in self.name else None):
            if not candidate:
                continue
            module = sys.modules.get(candidate)
            if module is not None and getattr(module, "__version__", None):
                return f"{candidate} {module.__version__}"
        return "unknown"


def load(spec: str) -> Implementation:
    """Load ``spec``: a bundled short name, ``module:callable`` or ``file.py:callable``."""
    if spec in BUNDLED:
        try:
            step = load_bundled(spec)
            module = importlib.import_module(BUNDLED[spec][0])
            return Implementation(spec, step, BUNDLED[spec][0], spec,
                                  getattr(module, "step_batch", None))
        except ImplementationUnavailable as exc:
            raise LoadError(str(exc)) from None
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
