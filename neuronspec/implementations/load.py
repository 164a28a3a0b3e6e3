"""Loading an implementation under test, and calling it safely.

An implementation is named by the short name of a bundled one (``manual``, ``numpy``,
``torch_autograd``, ``torch_sgd``, ``torch_sgd_foreach``, ``torch_sgd_fused``), by
``module:callable`` or by ``path/to/file.py:callable``.
It follows the step protocol (``neuronspec.implementations``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from reference.optim import BUFFERS, PARAMETERS, STEP_QUANTITIES
from reference.step import INPUTS, OPTIONAL, REQUIRED

from ..errors import ImplementationError, LoadError
from .bundled import BUNDLED, available, bundled_module, callable_of, library_of

__all__ = ["Implementation", "BatchOutputs", "load", "supervised", "target_of"]


class BatchOutputs(dict):
    """Quantity -> float64 array, all rows of one (quantities, cases) array ``block``;
    ``declined``: the cases the batch callable declined (a boolean array), or None."""

    def __init__(self, items, block, declined=None) -> None:
        super().__init__(items)
        self.block = block
        self.declined = declined


def _is_complex(value: Any) -> bool:
    """float() drops the imaginary part of numpy's complex scalars: they are refused."""
    return isinstance(value, complex) or getattr(getattr(value, "dtype", None), "kind", "") == "c"


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
    runner: "Callable[..., Any] | None" = None  # runs of SGD with options (``name_run``), if any
    from_state: "Callable[..., Mapping[str, Any]] | None" = None  # ``name_from``, if offered
    from_batch: "Callable[..., Mapping[str, Any]] | None" = None  # ``name_from_batch`` (R4)
    run_batch_form: "Callable[..., Mapping[str, Any]] | None" = None  # ``name_run_batch`` (R4)
    # the batch callable's input arrays, reused from chunk to chunk (fresh ones cost page
    # faults and cache misses: ~10% of a sweep's time)
    _scratch: dict = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, fmt: str, case: tuple) -> dict[str, float]:
        """Run the step on one case; raises NotImplementedError (unsupported format) or
        ImplementationError (anything it raised, exit included; a missing key; a value that
        is not a real number)."""
        w, b, x, t, lr = case
        try:
            out = self.step(w, b, x, t, lr, fmt)
        except NotImplementedError:
            raise
        except (Exception, SystemExit) as exc:
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
            value = out[key]
            # (a float, the common case, at once)
            values[key] = value if type(value) is float else self._real(key, value)
        return values

    def _real(self, key: str, value: Any, step: int = 0) -> float:
        """A returned value as a float, or ImplementationError naming it (and its step)."""
        try:
            if _is_complex(value):
                raise TypeError("a complex number is not a value of a binary format")
            return float(value)
        except Exception as exc:
            at = f" at step {step}" if step else ""
            raise ImplementationError(
                f"{self.name} returned {key} = {repr(value)[:80]}{at}, which is not a real "
                f"number ({type(exc).__name__}: {exc})", step=step) from None

    def run(self, fmt: str, w0: float, b0: float, data: Sequence[tuple[float, float, float]],
            options: Mapping[str, Any]) -> Iterator[dict[str, "float | None"]]:
        """A run of SGD with ``options`` (spec/protocol.md R2), step by step: each step's
        values checked as they arrive.  Raises NotImplementedError before step 1 (the option
        set or format declined), ImplementationError at the step it belongs to (``step``:
        its number; ``overflow`` where it raised an ArithmeticError)."""
        if self.runner is None:
            raise ImplementationError(f"{self.name} offers no step_run")
        k = 0
        try:
            steps = iter(self.runner(w0, b0, [tuple(d) for d in data], dict(options), fmt))
            for k, out in enumerate(steps, 1):
                if k > len(data):
                    raise ImplementationError(f"{self.name} returned more steps than data "
                                              f"({len(data)})", step=k)
                yield self._run_values(out, k)
        except NotImplementedError:
            if k == 0:
                raise
            raise ImplementationError(f"{self.name} declined at step {k + 1}, after steps it "
                                      f"computed", step=k + 1) from None
        except ImplementationError:
            raise
        except (Exception, SystemExit) as exc:
            raise ImplementationError(f"{self.name} raised {type(exc).__name__}: {exc}",
                                      overflow=isinstance(exc, ArithmeticError),
                                      step=k + 1) from exc
        if k < len(data):
            raise ImplementationError(f"{self.name} returned {k} steps for {len(data)} steps "
                                      f"of data", step=k + 1)

    def step_from_state(self, fmt: str, state: Mapping[str, "float | None"], x: float,
                        t: float, lr: float, options: Mapping[str, Any]
                        ) -> dict[str, "float | None"]:
        """One step of a run from ``state`` (spec/protocol.md R3)."""
        if self.from_state is None:
            raise ImplementationError(f"{self.name} offers no step_from")
        try:
            out = self.from_state(dict(state), x, t, lr, dict(options), fmt)
        except NotImplementedError:
            raise
        except (Exception, SystemExit) as exc:
            raise ImplementationError(f"{self.name} raised {type(exc).__name__}: {exc}",
                                      overflow=isinstance(exc, ArithmeticError)) from exc
        return self._run_values(out, 1)

    def _run_values(self, out: Any, k: int) -> dict[str, "float | None"]:
        """A step's mapping as floats (a buffer None for no buffer), or ImplementationError."""
        if not isinstance(out, Mapping):
            raise ImplementationError(f"{self.name} returned {type(out).__name__} at step {k}, "
                                      f"not a mapping of {', '.join(STEP_QUANTITIES)}", step=k)
        missing = [q for q in STEP_QUANTITIES if q not in out]
        if missing:
            raise ImplementationError(f"{self.name} returned no {', '.join(missing)} at step "
                                      f"{k} (it must return {', '.join(STEP_QUANTITIES)})",
                                      step=k)
        values: dict[str, "float | None"] = {}
        for key in STEP_QUANTITIES + tuple(q for q in OPTIONAL if q in out):
            value = out[key]
            no_buffer = value is None and key.startswith("buf_")
            values[key] = None if no_buffer else self._real(key, value, k)
        return values

    def _copies(self, cases: Mapping[str, Any], n: int) -> list:
        """Copies of the input arrays (the implementation may write into them: the checker
        judges its own), in buffers reused from call to call."""
        import numpy as np

        buffer = self._scratch.get("inputs")
        if buffer is None or buffer.shape[1] < n:
            buffer = self._scratch["inputs"] = np.empty((len(INPUTS), n))
        rows = [buffer[j, :n] for j in range(len(INPUTS))]
        for row, k in zip(rows, INPUTS):
            np.copyto(row, cases[k])
        return rows

    def run_batch(self, fmt: str, cases: Mapping[str, Any]) -> BatchOutputs:
        """Run the batch callable on copies of the arrays ``cases`` (w, b, x, t, lr: the
        checker judges its own); returns float64 rows of the quantities, or raises
        NotImplementedError / ImplementationError (one line)."""
        import numpy as np

        if self.batch is None:
            raise ImplementationError(f"{self.name} offers no batch callable")
        n = len(cases["w"])
        out = self._mapping("batch", REQUIRED, self.batch, *self._copies(cases, n), fmt)
        keys = _returned(out)
        block = np.empty((len(keys), n))  # one float64 row per quantity, for the batch reference
        for j, key in enumerate(keys):
            try:
                arr = np.asarray(out[key])
            except Exception as exc:
                raise ImplementationError(f"{self.name} batch returned {key} that is not an "
                                          f"array ({type(exc).__name__}: {exc})") from None
            if arr.dtype.kind != "f":
                raise ImplementationError(
                    f"{self.name} batch returned {key} of dtype {arr.dtype}, not a real "
                    "floating-point array")
            if arr.shape != (n,):
                raise ImplementationError(
                    f"{self.name} batch returned {key} of shape {arr.shape}, expected "
                    f"({n},): one value per case")
            block[j] = arr
        declined = None
        if "declined" in out:  # cases it declines (the sweep checks it may)
            declined = np.asarray(out["declined"])
            if declined.dtype != bool or declined.shape != (n,):
                raise ImplementationError(
                    f"{self.name} batch returned 'declined' of dtype {declined.dtype} and shape "
                    f"{declined.shape}, expected a boolean array of shape ({n},)")
        return BatchOutputs(zip(keys, block), block=block, declined=declined)

    def _mapping(self, what: str, keys: tuple, form: Callable[..., Any], *args: Any
                 ) -> Mapping[str, Any]:
        """What a batch form returns, called on ``args``: a mapping with ``keys``, else one
        line (NotImplementedError passes: a format or option set declined)."""
        try:
            out = form(*args)
        except NotImplementedError:
            raise
        except (Exception, SystemExit) as exc:
            raise ImplementationError(
                f"{self.name} {what} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(out, Mapping):
            raise ImplementationError(f"{self.name} {what} returned {type(out).__name__}, not "
                                      f"a mapping of arrays {', '.join(keys)}")
        missing = [k for k in keys if k not in out]
        if missing:
            raise ImplementationError(f"{self.name} {what} returned no {', '.join(missing)}")
        return out

    def steps_from_batch(self, fmt: str, cols: Mapping[str, Any], options: Mapping[str, Any]
                         ) -> dict[str, Any]:
        """spec/protocol.md R4: ``n`` steps from ``n`` states through ``name_from_batch``
        (copies of the arrays ``cols``: w, b, buf_w, buf_b (None: no buffer), x, t, lr):
        float64 arrays per quantity of a step of a run (a buffer None for no buffer), or
        NotImplementedError / ImplementationError (one line)."""
        import numpy as np

        if self.from_batch is None:
            raise ImplementationError(f"{self.name} offers no step_from_batch")
        n = len(cols["w"])
        order = tuple(PARAMETERS) + BUFFERS + tuple(k for k in INPUTS if k not in PARAMETERS)
        args = [None if cols[k] is None else np.array(cols[k], dtype=np.float64)
                for k in order]  # (w, b, buf_w, buf_b, x, t, lr: R4's order)
        out = self._mapping("step_from_batch", STEP_QUANTITIES, self.from_batch, *args,
                            dict(options), fmt)
        return self._arrays("step_from_batch", out, (n,))

    def runs_batch(self, fmt: str, w0: Any, b0: Any, data: Mapping[str, Any],
                   options: Mapping[str, Any]) -> dict[str, Any]:
        """spec/protocol.md R4: ``n`` runs of ``K`` steps from (w0, b0) (arrays of shape (n,))
        over ``data`` (x, t, lr: arrays of shape (K, n)) through ``name_run_batch`` (on copies),
        or, without it, through ``name_run`` run by run: float64 arrays of shape (K, n) per
        quantity of a step of a run (buffers None for none), or NotImplementedError /
        ImplementationError (one line)."""
        import numpy as np

        K, n = np.shape(data["x"])
        if self.run_batch_form is None:
            return self._runs_one_by_one(fmt, w0, b0, data, options)
        args = [np.array(v, dtype=np.float64) for v in (w0, b0, data["x"], data["t"],
                                                         data["lr"])]
        out = self._mapping("step_run_batch", STEP_QUANTITIES, self.run_batch_form, *args,
                            dict(options), fmt)
        return self._arrays("step_run_batch", out, (K, n))

    def _runs_one_by_one(self, fmt: str, w0: Any, b0: Any, data: Mapping[str, Any],
                         options: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`runs_batch` through the run callable, one run after the other."""
        import numpy as np

        if self.runner is None:
            raise ImplementationError(f"{self.name} offers no step_run_batch and no step_run")
        K, n = np.shape(data["x"])
        values: dict[str, Any] = {}
        for j in range(n):
            steps = list(zip(*(np.asarray(data[k])[:, j].tolist() for k in ("x", "t", "lr"))))
            for k, out in enumerate(self.run(fmt, float(w0[j]), float(b0[j]), steps, options)):
                for q, v in out.items():
                    if q not in values:
                        values[q] = None if v is None else np.full((K, n), np.nan)
                    if (v is None) != (values[q] is None):
                        raise ImplementationError(f"{self.name} returned {q} = {v!r} at step "
                                                  f"{k + 1} of run {j}, unlike the runs before")
                    if v is not None:
                        values[q][k, j] = v
        if (values.get("buf_w") is None) != (values.get("buf_b") is None):  # (as ``_arrays``)
            raise ImplementationError(f"{self.name} step_run returned a buffer for one "
                                      "parameter only: both have one, or neither")
        return values

    def _arrays(self, what: str, out: Mapping[str, Any], shape: tuple) -> dict[str, Any]:
        """A batch form's mapping as float64 arrays of ``shape`` per quantity of a step of a
        run (a buffer None for no buffer), or ImplementationError (one line)."""
        import numpy as np

        values: dict[str, Any] = {}
        for key in STEP_QUANTITIES + tuple(q for q in OPTIONAL if q in out):
            if out[key] is None and key.startswith("buf_"):
                values[key] = None
                continue
            try:
                arr = np.asarray(out[key])
            except Exception as exc:
                raise ImplementationError(f"{self.name} {what} returned {key} that is not an "
                                          f"array ({type(exc).__name__}: {exc})") from None
            if arr.dtype.kind != "f" or arr.shape != shape:
                raise ImplementationError(
                    f"{self.name} {what} returned {key} of dtype {arr.dtype} and shape "
                    f"{arr.shape}, expected real floating-point values of shape {shape}")
            values[key] = arr.astype(np.float64)
        if (values["buf_w"] is None) != (values["buf_b"] is None):
            raise ImplementationError(f"{self.name} {what} returned a buffer for one parameter "
                                      "only: both have one, or neither")
        return values

    def version(self) -> str:
        """The implementation's package version, where one can be found (for a bundled one,
        the library it exercises)."""
        if self.spec in BUNDLED:
            return _bundled_version(self.spec)
        module = sys.modules.get(self.origin.split(".")[0])
        if module is not None and getattr(module, "__version__", None):
            return f"{module.__name__} {module.__version__}"
        return "unknown"


def load(spec: str) -> Implementation:
    """Load ``spec``: a bundled short name, ``module:callable`` or ``file.py:callable``."""
    if spec in BUNDLED:
        module = bundled_module(spec)
        attr = callable_of(spec)
        return Implementation(spec, getattr(module, attr), BUNDLED[spec][0], spec,
                              getattr(module, f"{attr}_batch", None),
                              *_run_forms(module, attr, spec))
    where, attr, path = _parts(spec)
    if path is not None:
        name = f"_neuronspec_impl_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        folder = str(path.resolve().parent)
        if folder not in sys.path:  # as `python file.py` would: modules beside it import
            sys.path.insert(0, folder)
        try:
            module_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            raise LoadError(f"cannot load implementation {spec!r}: importing {path} raised "
                            f"{type(exc).__name__}: {exc}") from None
        origin = str(path)
    else:
        try:
            module = importlib.import_module(where)
        except (Exception, SystemExit) as exc:
            raise LoadError(f"cannot load implementation {spec!r}: importing {where} raised "
                            f"{type(exc).__name__}: {exc}") from None
        origin = where
    step = getattr(module, attr, None)
    if step is None or not callable(step):
        raise LoadError(f"cannot load implementation {spec!r}: {origin} has no callable {attr!r}")
    batch = getattr(module, f"{attr}_batch", None)
    return Implementation(_label(where, attr, _is_file(where)), step, origin, spec,
                          batch if callable(batch) else None, *_run_forms(module, attr, spec))


def _run_forms(module: Any, attr: str, spec: str) -> tuple:
    """(``attr_run``, ``attr_from``, ``attr_from_batch``, ``attr_run_batch``) of the module,
    None where absent; a load error for one that is present but not callable
    (spec/protocol.md R2, R4)."""
    forms = []
    for suffix in ("run", "from", "from_batch", "run_batch"):
        form = getattr(module, f"{attr}_{suffix}", None)
        if form is not None and not callable(form):
            raise LoadError(f"cannot load implementation {spec!r}: its {attr}_{suffix} is "
                            f"{type(form).__name__}, not callable")
        forms.append(form)
    return tuple(forms)


def _label(where: str, attr: str, is_file: bool) -> str:
    label = Path(where).stem if is_file else where.rsplit(".", 1)[-1]
    return f"{label}:{attr}" if attr != "step" else label


def _bundled_version(name: str) -> str:
    """What a bundled implementation exercises, with its version (read from the installed
    package's metadata: nothing is imported)."""
    from importlib import metadata

    library = library_of(name)
    if library is None:
        return "python " + sys.version.split()[0]
    try:
        return f"{library} {metadata.version(library)}"
    except metadata.PackageNotFoundError:
        return f"{library} (version unknown)"


def _parts(spec: str) -> "tuple[str, str, Path | None]":
    """(module or file, callable name, the file's path if it names one) of a spec that is not
    a bundled name; a clear error for one that names neither, or a file that is not there."""
    if ":" not in spec:
        raise LoadError(
            f"cannot load implementation {spec!r}: use a bundled name ({', '.join(BUNDLED)}), "
            "module:callable or path/to/file.py:callable")
    where, _, attr = spec.rpartition(":")
    if not _is_file(where):
        return where, attr, None
    path = Path(where)
    if not path.is_file():
        raise LoadError(f"cannot load implementation {spec!r}: no file {path}")
    return where, attr, path


def _is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def target_of(spec: str) -> "tuple[str, str, str, str]":
    """(what the protocol server loads, name, origin, version) of an implementation spec,
    without importing the implementation (its module may exit or hang on import)."""
    from importlib import metadata

    if spec in BUNDLED:
        available(spec)
        return (f"{BUNDLED[spec][0]}:{callable_of(spec)}", spec, BUNDLED[spec][0],
                _bundled_version(spec))
    where, attr, path = _parts(spec)
    if path is not None:
        return f"{path.resolve()}:{attr}", _label(where, attr, True), str(path), "unknown"
    top = where.split(".")[0]
    try:
        dists = metadata.packages_distributions().get(top, [])
        version = f"{dists[0]} {metadata.version(dists[0])}" if dists else "unknown"
    except Exception:  # a broken installation must not stop the check
        version = "unknown"
    return spec, _label(where, attr, False), where, version


def supervised(spec: str, timeout: "float | None" = None, load_timeout: float = 120.0,
               wait: bool = True, runs: bool = False):
    """The implementation ``spec`` run in its own process, served by ``serve.py`` over the
    protocol: every call is supervised as a ``--cmd`` program's is (timeout, crash, exit,
    garbage: a reported failure of the case), and nothing it does can end the checker;
    ``runs``: speak protocol version 2 (runs of SGD with options, R5)."""
    from .process import DEFAULT_TIMEOUT, ProcessImplementation

    target, name, origin, version = target_of(spec)
    serve = str(Path(__file__).with_name("serve.py"))
    return ProcessImplementation([sys.executable, serve, target],
                                 DEFAULT_TIMEOUT if timeout is None else timeout, name=name,
                                 spec=spec, origin=origin, version=version, decimals=False,
                                 load_timeout=max(load_timeout, timeout or 0), wait=wait,
                                 runs=runs)
