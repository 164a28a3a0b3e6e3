"""The batch verdict as compiled loops (numba), generated from the code the numpy path runs.

Nothing here restates the step, the bounds or the judgement.  The functions the numpy path
calls on arrays -- ``chain.exact_pairs``, ``bounds.bound_chain`` in ``chain.PairArithmetic``,
``judgement.judge_values`` and ``judgement.estimate_values`` -- are called once more on symbolic
values (:class:`Sym`), which record every operation as a line of straight-line Python; that
source, wrapped in a loop over the cases, is compiled by numba.  The compiled loop therefore
performs the same binary64 operations in the same order as the numpy definition, node for node
(``tests/test_batch.py`` compares every node of every model).

The source is specialised per format and model, written once to a cache directory
(``NEURONSPEC_CACHE_DIR``, else ``$XDG_CACHE_HOME/neuronspec`` or ``~/.cache/neuronspec``) under
the hash of its text, and imported from there, so numba caches the compiled code next to it.
A process compiling one of its functions holds a lock file there (:func:`compile_lock`): other
processes needing the same function wait, then load numba's result instead of compiling it too.
``python -m reference.batch.kernel FORMAT MODEL`` prints it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX: no compile lock, each process compiles what it needs
    fcntl = None

from ..bounds import Model, bound_chain, get_model
from ..formats import Format, get_format
from ..step import INPUTS, NODE_OF, NODES
from .arith import BINARY64
from .chain import PairArithmetic, exact_pairs, quantity_bounds
from .judgement import NONNEGATIVE, ROWS, estimate_values, judge_values

__all__ = ["Sym", "Tracer", "SymOps", "source", "kernels", "generated", "compiled", "fma_arrays",
           "load_source", "compile_lock", "print_source", "node_table",
           "NODE_TABLE_KINDS", "HELPERS", "COMPILE_LOCK_TIMEOUT"]


class Tracer:
    """Records operations on :class:`Sym` values as lines of Python."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.count = 0
        self.indent = 0

    def emit(self, expression: str) -> "Sym":
        self.count += 1
        name = f"v{self.count}"
        self.lines.append("    " * self.indent + f"{name} = {expression}")
        return Sym(self, name)

    def line(self, text: str) -> None:
        self.lines.append("    " * self.indent + text)


def _text(value: Any) -> str:
    """A value as Python source: a Sym's name or an exact literal."""
    if isinstance(value, Sym):
        return value.name
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    f = float(value)
    if math.isnan(f):
        return "math.nan"
    if math.isinf(f):
        return "math.inf" if f > 0 else "-math.inf"
    assert float(repr(f)) == f
    return repr(f)


class Sym:
    """A symbolic binary64 (or boolean) value: arithmetic on it is recorded, not performed.

    A branch on a Sym is an error: traced code must select with ``ops.select``."""

    __slots__ = ("tracer", "name")
    __hash__ = None  # type: ignore[assignment]
    __array_ufunc__ = None  # numpy scalars defer to the reflected operators below

    def __init__(self, tracer: Tracer, name: str) -> None:
        self.tracer, self.name = tracer, name

    def _op(self, op: str, other: Any, reverse: bool = False) -> "Sym":
        a, b = (_text(other), self.name) if reverse else (self.name, _text(other))
        return self.tracer.emit(f"{a} {op} {b}")

    def __add__(self, o): return self._op("+", o)
    def __radd__(self, o): return self._op("+", o, True)
    def __sub__(self, o): return self._op("-", o)
    def __rsub__(self, o): return self._op("-", o, True)
    def __mul__(self, o): return self._op("*", o)
    def __rmul__(self, o): return self._op("*", o, True)
    def __truediv__(self, o): return self._op("/", o)
    def __rtruediv__(self, o): return self._op("/", o, True)
    def __lt__(self, o): return self._op("<", o)
    def __le__(self, o): return self._op("<=", o)
    def __gt__(self, o): return self._op(">", o)
    def __ge__(self, o): return self._op(">=", o)
    def __eq__(self, o): return self._op("==", o)  # type: ignore[override]
    def __ne__(self, o): return self._op("!=", o)  # type: ignore[override]
    def __and__(self, o): return self._op("&", o)
    def __or__(self, o): return self._op("|", o)
    def __neg__(self): return self.tracer.emit(f"-{self.name}")
    def __abs__(self): return self.tracer.emit(f"abs({self.name})")

    def __bool__(self) -> bool:
        raise TypeError("a data-dependent branch in traced code: use ops.select")


class SymOps:
    """``ops`` for traced code: each selection or test becomes one line."""

    false = False

    @staticmethod
    def _tracer(*values) -> Tracer:
        return next(v.tracer for v in values if isinstance(v, Sym))

    @classmethod
    def _call(cls, template: str, *values) -> Any:
        return cls._tracer(*values).emit(template.format(*(_text(v) for v in values)))

    #: How a selection is written (a conditional expression here).
    SELECT = "{1} if {0} else {2}"

    @classmethod
    def select(cls, cond, a, b):
        if not isinstance(cond, Sym):
            return a if cond else b
        return cls._call(cls.SELECT, cond, a, b)

    pick = select

    @classmethod
    def maximum(cls, a, b):
        return cls._call("np.maximum({0}, {1})", a, b)

    @classmethod
    def minimum(cls, a, b):
        return cls._call("np.minimum({0}, {1})", a, b)

    @classmethod
    def isfinite(cls, a):
        return cls._call("np.isfinite({0})", a)

    @classmethod
    def logical_not(cls, a):
        return cls._call("not {0}", a)

    @classmethod
    def logical_and(cls, a, b):
        if a is False or b is False:
            return False
        if not isinstance(a, Sym):
            return b
        if not isinstance(b, Sym):
            return a
        return cls._call("{0} & {1}", a, b)

    @classmethod
    def either(cls, a, b):
        if a is False:
            return b
        if b is False:
            return a
        return cls._call("{0} | {1}", a, b)

    @staticmethod
    def flag(cond, message):
        return cond

    @classmethod
    def copysign(cls, a, b):
        return cls._call("math.copysign({0}, {1})", a, b)

    @classmethod
    def pow2floor(cls, a):
        return cls._call("_pow2floor({0})", a)

    @classmethod
    def to_binary32(cls, a):
        """A binary64 value rounded to binary32 (nearest-even, overflow to inf) by the
        processor's conversion, carried as binary64."""
        if not isinstance(a, Sym):
            return float(np.float32(a))
        return cls._call("np.float64(np.float32({0}))", a)

    @classmethod
    def add_binary32(cls, a, b):
        """The binary32 sum of two binary32 values (carried as binary64)."""
        if not isinstance(a, Sym) and not isinstance(b, Sym):
            return float(np.float32(a) + np.float32(b))
        return cls._call("np.float64(np.float32({0}) + np.float32({1}))", a, b)

    @staticmethod
    def is_true(c):
        raise TypeError("a data-dependent branch in traced code")


# ---- what is traced --------------------------------------------------------------------------

NODE_TABLE_KINDS = ("hi", "lo", "delta", "error", "flag")


def node_table(A: PairArithmetic, fmt: Format, model: Model, inputs: dict) -> dict[str, Any]:
    """Every node's pair and bound, and every quantity's bound and interval, by name: what the
    node-for-node comparison of the compiled and numpy paths compares."""
    values = exact_pairs(A.work, inputs)
    chain = bound_chain(A, fmt, model, values, {k: A.zero for k in INPUTS})
    out: dict[str, Any] = {}
    for node in NODES:
        pair = values[node.name]
        out.update({f"{node.name}.hi": pair.hi, f"{node.name}.lo": pair.lo,
                    f"{node.name}.delta": pair.delta, f"{node.name}.error": chain.errors[node.name],
                    f"{node.name}.flag": chain.flags[node.name]})
    for q, (bound, ood, low, high) in quantity_bounds(A, chain).items():
        out.update({f"{q}.bound": bound, f"{q}.ood": ood, f"{q}.low": low, f"{q}.high": high})
    return out


def _case(t: Tracer) -> dict[str, Sym]:
    for k in INPUTS:
        t.line(f"{k}_i = {k}[i]")
    return {k: Sym(t, f"{k}_i") for k in INPUTS}


def _prepare(fmt: Format, model: Model, t: Tracer):
    A = PairArithmetic(SymOps, BINARY64)
    inputs = _case(t)
    t.line("# exact values: chain.exact_pairs")
    values = exact_pairs(BINARY64, inputs)
    t.line("# bounds: bounds.bound_chain in chain.PairArithmetic")
    chain = bound_chain(A, fmt, model, values, {k: A.zero for k in INPUTS})
    return values, quantity_bounds(A, chain)


def _rows(t: Tracer, emit_row: Callable[[int, str], None]) -> None:
    for k, q in enumerate(ROWS):
        if q not in ROWS[:6]:
            t.line("if rows > 6:")
            t.indent += 1
        t.line(f"# row {k}: {q}")
        emit_row(k, q)
        if q not in ROWS[:6]:
            t.indent -= 1


def _verdict_body(fmt: Format, model: Model, t: Tracer) -> None:
    values, bounds = _prepare(fmt, model, t)

    def row(k: int, q: str) -> None:
        t.line(f"c{k} = outs[{k}, i]")
        c = Sym(t, f"c{k}")
        status, ratio = judge_values(SymOps, fmt, BINARY64, c, values[NODE_OF[q]], *bounds[q],
                                     nonnegative=q in NONNEGATIVE)
        t.line(f"status[{k}, i] = {_text(status)}")
        t.line(f"ratio[{k}, i] = {_text(ratio)}")

    _rows(t, row)


def _screen_body(fmt: Format, model: Model, t: Tracer) -> None:
    values, bounds = _prepare(fmt, model, t)
    t.line("mask = 0")

    def row(k: int, q: str) -> None:
        t.line(f"c{k} = outs[{k}, i]")
        c = Sym(t, f"c{k}")
        bound, ood, _, _ = bounds[q]
        attention, estimate = estimate_values(SymOps, fmt, BINARY64, c, values[NODE_OF[q]],
                                              bound, ood, nonnegative=q in NONNEGATIVE)
        t.line(f"estimate[{k}, i] = {_text(estimate)}")
        t.line(f"mask |= {_text(attention)} << {k}")

    _rows(t, row)
    t.line("attention[i] = mask")


def _nodes_body(fmt: Format, model: Model, t: Tracer) -> None:
    A = PairArithmetic(SymOps, BINARY64)
    table = node_table(A, fmt, model, _case(t))
    for j, value in enumerate(table.values()):
        t.line(f"out[{j}, i] = {_text(value)}")


#: The helpers every generated module starts with: bit casts, and ``ArrayOps.pow2floor``.
HELPERS = '''import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _bits(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(types.float64), codegen


@intrinsic
def _float(typingctx, n):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@njit(inline="always", error_model="numpy")
def _pow2floor(a):
    """ArrayOps.pow2floor: the exponent field alone (inf stays inf)."""
    return _float(_bits(a) & 0x7FF0000000000000)
'''

_PREAMBLE = '''"""Generated by reference.batch.kernel from the numpy path's own code ({fmt}, model {model}).
Do not edit: it is regenerated whenever that code changes."""

''' + HELPERS

_FUNCTIONS = {
    "verdict": ("w, b, x, t, lr, outs, ratio, status", _verdict_body,
                "Per case and row of outs: status and error/bound (judgement.judge_values)."),
    "screen": ("w, b, x, t, lr, outs, estimate, attention", _screen_body,
               "Per case: estimates and the mask of rows needing attention "
               "(judgement.estimate_values)."),
    "nodes": ("w, b, x, t, lr, out", _nodes_body,
              "Per case: every entry of node_table, one row each (for the node-for-node test)."),
}


def source(fmt: "Format | str", model: "Model | str") -> str:
    """The kernel module for ``fmt`` and ``model``: functions verdict, screen and nodes."""
    fmt, model = get_format(fmt), get_model(model)
    parts = [_PREAMBLE.format(fmt=fmt.name, model=model.name)]
    for name, (args, body, doc) in _FUNCTIONS.items():
        t = Tracer()
        t.indent = 2
        body(fmt, model, t)
        parts.append(f'''

@njit(cache=True, nogil=True, error_model="numpy")
def {name}({args}):
    """{doc}"""
    rows = {"outs.shape[0]" if "outs" in args else "0"}
    for i in range(w.shape[0]):
''' + "\n".join(t.lines) + "\n")
    return "".join(parts)


_LOADED: dict = {}


def cache_dir() -> Path:
    configured = os.environ.get("NEURONSPEC_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "neuronspec"


def _write(text: str, prefix: str) -> Optional[Path]:
    """The source as a file named by its hash (written atomically once), or None."""
    name = prefix + hashlib.sha256(text.encode()).hexdigest()[:20] + ".py"
    for directory in (cache_dir() / "kernels",
                      Path(tempfile.gettempdir()) / f"neuronspec-{os.getuid() if hasattr(os, 'getuid') else 0}"):
        path = directory / name
        try:
            if path.exists() and path.read_text() == text:
                return path
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            _publish(tmp, path, text)
            return path
        except OSError:
            continue
    return None


def _publish(tmp: str, path: Path, text: str) -> None:
    """Moves the written file ``tmp`` to ``path`` unless another process published the same
    text there first: numba's cache index is stamped with its source file's mtime, so a file
    replaced after another process imported it would make that process's compilation stale
    for every later one (compiled again)."""
    try:
        os.link(tmp, path)  # fails where the file exists: the first writer's file stays
    except FileExistsError:
        if path.read_text() != text:  # (a damaged file)
            os.replace(tmp, path)
            return
    except OSError:  # no hard links on this file system
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def load_source(text: str, prefix: str, name: str) -> Any:
    """A generated module: written to the cache directory under the hash of its text and
    imported from there as ``name`` (numba's cache refers to its functions by that name), or
    compiled from memory where no directory is writable (no cache then).  Its cached functions
    compile under :func:`compile_lock`: one process compiles, the others load the result."""
    path = _write(text, prefix)
    if path is None:
        module = type(sys)(name)
        sys.modules[name] = module
        exec(compile(text, f"<{name}>", "exec"), module.__dict__)
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _lock_compilation(module, path)
    return module


#: How long a process waits for another one compiling the same function before compiling it
#: itself: the longest compilation here takes about 25 s; a holder that hangs (stopped, in a
#: debugger) must not stop the others for longer.
COMPILE_LOCK_TIMEOUT = 120.0

#: Whether this thread holds a compile lock: a function compiled as part of another one's
#: compilation is covered by that lock (and taking a second one could deadlock).
_HOLDING = threading.local()


@contextlib.contextmanager
def compile_lock(path: Path, timeout: float = COMPILE_LOCK_TIMEOUT) -> Iterator[bool]:
    """Holds the lock file ``path`` (flock) against other processes and threads; yields whether
    it holds it.  Where it cannot be taken (no fcntl, a directory not writable, a file system
    without flock, ``timeout`` seconds spent waiting) the caller goes on without it; within a
    lock this thread holds, it is not taken again."""
    if getattr(_HOLDING, "lock", None) is not None:
        yield False
        return
    fd = _flock(path, timeout)
    _HOLDING.lock = path
    try:
        yield fd is not None
    finally:
        _HOLDING.lock = None
        if fd is not None:
            os.close(fd)  # (releases the flock)


def _flock(path: Path, timeout: float) -> Optional[int]:
    """A descriptor of ``path`` holding its exclusive flock, or None."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return None
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:  # (polled, not blocking: the wait has a deadline)
            if time.monotonic() >= deadline:
                break
            time.sleep(pause)
            pause = min(2 * pause, 0.2)
        except OSError:
            break
    os.close(fd)
    return None


def _lock_compilation(module: Any, path: Path) -> None:
    """Makes each function of the module that numba caches compile under a lock of its own next
    to the module's file, so that processes needing the same function at once (test workers,
    sweep workers) compile it once: the others wait, then load it from numba's cache."""
    for name, function in list(vars(module).items()):
        stats = getattr(function, "stats", None)
        if getattr(stats, "cache_path", None) is None or not callable(
                getattr(function, "compile", None)):
            continue  # not a dispatcher, or one without a disk cache: nothing to share
        function.compile = _locked(function.compile, path.with_name(f"{path.stem}.{name}.lock"))


def _locked(compile: Callable[[Any], Any], lock: Path) -> Callable[[Any], Any]:
    """A dispatcher's ``compile`` (numba calls it for each new signature: it loads from the
    cache or compiles) under ``compile_lock(lock)``."""
    def locked(sig: Any) -> Any:
        with compile_lock(lock):
            return compile(sig)
    return locked


def generated(kind: str, fmt: "Format | str", model: "Model | str",
              make: Callable[[Format, Model], str]) -> Any:
    """The generated module ``kind`` (kernel, explain) of ``fmt`` and ``model`` from its source
    ``make(fmt, model)``, loaded once per process; None without numba."""
    fmt, model = get_format(fmt), get_model(model)
    key = (kind, fmt.name, model.name)
    if key not in _LOADED:
        _LOADED[key] = None if importlib.util.find_spec("numba") is None else load_source(
            make(fmt, model), f"{kind}_",
            f"_neuronspec_{kind}_{fmt.name}_{model.name.replace('+', '_')}")
    return _LOADED[key]


def compiled(module: Any, names: "tuple[str, ...]") -> bool:
    """Whether calling the functions ``names`` of a generated module costs no compilation:
    they ran in this process, or numba's cache holds them."""
    if module is None:
        return False
    functions = [getattr(module, n) for n in names]
    if all(f.signatures for f in functions):
        return True
    path = getattr(module, "__file__", None)
    if path is None:
        return False
    cached = Path(path).parent / "__pycache__"
    return all(any(cached.glob(f"{Path(path).stem}.{n}-*.nbi")) for n in names)


#: binary64's fused multiply-add, one rounding (LLVM's ``llvm.fma``: the processor's FMA
#: instruction, else the C library's ``fma``; both exact), over arrays.
FMA_SOURCE = '''"""Generated by reference.batch.kernel: binary64's fused multiply-add on arrays."""

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _fma(typingctx, a, b, c):
    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [double],
                                              ir.FunctionType(double, [double] * 3))
        return builder.call(fn, args)
    return types.float64(types.float64, types.float64, types.float64), codegen


@njit(cache=True, nogil=True)
def fma(a, b, c, out):
    """out[i] = a[i]*b[i] + c[i], rounded once to nearest (binary64)."""
    for i in range(a.shape[0]):
        out[i] = _fma(a[i], b[i], c[i])
'''


def fma_arrays(a: Any, b: Any, c: Any) -> "Any | None":
    """``a*b + c`` rounded once to binary64, element by element (numpy arrays broadcast
    together), compiled; None without numba (``legal.fma_exact`` emulates it then)."""
    key = ("fma",)
    if key not in _LOADED:
        _LOADED[key] = None if importlib.util.find_spec("numba") is None else load_source(
            FMA_SOURCE, "fma_", "_neuronspec_fma")
    module = _LOADED[key]
    if module is None:
        return None
    import numpy as np

    a, b, c = (np.ascontiguousarray(v, dtype=np.float64).ravel()
               for v in np.broadcast_arrays(a, b, c))
    out = np.empty_like(a)
    module.fma(a, b, c, out)
    return out


def kernels(fmt: "Format | str", model: "Model | str") -> Any:
    """The compiled functions (verdict, screen, nodes) for ``fmt`` and ``model``, or None
    without numba."""
    return generated("kernel", fmt, model, source)


def print_source(program: str, make: Callable[[str, str], str],
                 argv: "list[str] | None" = None) -> int:
    """``python -m PROGRAM FORMAT MODEL``: print the generated module (exit 2 on bad input)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(f"usage: python -m {program} FORMAT MODEL", file=sys.stderr)
        return 2
    try:
        print(make(*args), end="")
    except ValueError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: "list[str] | None" = None) -> int:
    return print_source("reference.batch.kernel", source, argv)


if __name__ == "__main__":
    sys.exit(main())
