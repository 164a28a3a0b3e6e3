"""The legal evaluations of one step of a run on arrays of steps: ``optim_rounded`` on numpy.

``reference.optim_rounded.sgd_evaluations`` lists every legal evaluation of one step of a run
(the plain step's admitted variants, then the optimiser's nodes with their fusions, roundings of
``c = 1 - dampening``, momenta of ``mu*buf`` and buffer format) and computes each exactly.
:func:`sgd_evaluations_batch` computes the same evaluations, under the same names and in the
same order, for arrays of steps:

- the plain step's values by ``legal.evaluate_arrays`` (``legal.evaluate_step``);
- the optimiser's nodes by the one function that defines them,
  ``optim_rounded.parameter_evaluation``, called with :class:`ArrayWork` in place of
  ``optim_rounded.RoundedWork``: each operation as ``legal.VariantArithmetic`` computes it (a
  product of two values of at most 24 bits exact in binary64, a TwoProduct pair where an
  operand is wider, such as a constant ``c`` rounded to binary64; TwoSum pairs rounded once;
  binary64's fused operations through the processor's fma; x87's emulated), or, where that is
  the same rounding, by numpy's casts to float32 and float16 (:meth:`ArrayWork._cast`).

Evaluations that agree up to a node share it: every operation is memoised on its work and its
operands (the plain step's values are made the same array where two variants give the same
values on every step), so that the 576 evaluations of float16 with momentum, dampening and
weight decay compute a few dozen distinct arrays per parameter.

The steps the arrays cannot guarantee (what ``legal.VariantArithmetic`` cannot: an underflow
or overflow inside an error-free transformation, x87 work on a platform without it; x87 values
in binary64 work; inputs the scalar function refuses) are returned as a mask; the caller gives
them to ``sgd_evaluations``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from ..formats import Format, get_format
from ..model import Model
from ..optim import Options
from ..optim_bounds import check_run_model, holds
from ..optim_rounded import buffer_work, parameter_evaluation, run_evaluations
from ..step import INPUTS
from .arith import BINARY64, round_array, two_sum
from .legal import HAVE_X87, LD, VariantArithmetic, evaluate_arrays

__all__ = ["sgd_evaluations_batch", "ArrayWork", "held"]

#: The plain step's quantities an evaluation of a run reports, in ``sgd_evaluations``' order.
_PLAIN = ("y", "loss", "dL_dw", "dL_db", "dL_dy")


def _casts_half_once() -> bool:
    """Whether numpy rounds binary64 to float16 once (IEEE), not through float32 (whose
    rounding would make these midpoints of float16 first)."""
    x = np.array([1 + 2.0**-11 + 2.0**-40, -(1 + 2.0**-11 + 2.0**-40), 2.0**-25 + 2.0**-60])
    with np.errstate(all="ignore"):
        return x.astype(np.float16).astype(np.float64).tolist() == [1 + 2.0**-10,
                                                                   -(1 + 2.0**-10), 2.0**-24]


#: Whether a binary64 value cast to float16 is its IEEE rounding (numpy's scalar conversion).
HALF_CAST_ONCE = _casts_half_once()


def _bfloat16(r: np.ndarray) -> np.ndarray:
    """float32 values rounded to bfloat16 (to nearest, ties to even), as float32."""
    bits = np.ascontiguousarray(r, dtype=np.float32).view(np.uint32)
    up = np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    rounded = ((bits + up) & np.uint32(0xFFFF0000)).view(np.float32)
    return np.where(np.isnan(r), r, rounded)


def _odd(s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """s + e (a TwoSum pair) rounded to odd in binary64: s, or its neighbour toward e where
    e is not zero and s even (then rounded to nearest in at most 51 bits, as s + e is)."""
    bits = np.ascontiguousarray(s, dtype=np.float64).view(np.int64)
    inexact = (e != 0) & ((bits & 1) == 0) & np.isfinite(s)
    step = np.where((e > 0) == (s > 0), 1, -1)  # away from zero, or toward it
    return np.where(inexact, bits + step, bits).view(np.float64)


def held(fmt: Format, values: np.ndarray) -> np.ndarray:
    """Per element, whether it is a finite value of ``fmt``."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if fmt.p >= BINARY64.precision:
        return finite
    with np.errstate(all="ignore"):
        return finite & (round_array(fmt, values, work=BINARY64) == values)


def _key(v: Any) -> tuple:
    """What the memo knows an operand by: a constant by its value (and sign), an array by its
    identity (the memo holds it, so the identity is not reused)."""
    if isinstance(v, float):
        return ("k", v.hex())
    return ("a", id(v))


class ArrayWork:
    """The arithmetic ``optim_rounded.parameter_evaluation`` runs in, on arrays of steps, for
    one kind of work of one format: ``mul``, ``add``, ``fma`` as ``legal.VariantArithmetic``
    computes them (binary64 values; x87 longdouble in x87 work), ``neg`` and ``store``.

    Every operation is memoised in ``memo`` (shared by the works of one call) on its kind, work
    and operands; the steps an operation cannot guarantee are or-ed into ``undecided`` (one mask
    for every evaluation: a step is the scalar function's as a whole)."""

    def __init__(self, fmt: Format, work: str, memo: dict, undecided: np.ndarray) -> None:
        self.name = (fmt.name, work)
        self.memo, self.undecided = memo, undecided
        # operands of at most 24 bits (products exact in binary64) and wider ones (TwoProduct)
        self.exact = VariantArithmetic(fmt, work, False)
        self.wide = VariantArithmetic(fmt, work, False)
        self.exact.native = self.wide.native = None  # (values carried as binary64)
        self.wide.wide_lr = True
        self.narrow, self.x87 = self.exact.narrow, self.exact.x87
        if self.x87 and not HAVE_X87:
            self.undecided[:] = True

    # -- the memo ------------------------------------------------------------------------------

    def _op(self, kind: str, compute, *args):
        key = (kind, self.name) + tuple(_key(a) for a in args)
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = (compute(*args), args)
        return hit[0]

    def _flag(self, bad) -> None:
        if bad is not False:
            np.logical_or(self.undecided, bad, out=self.undecided)

    def _fits(self, v, dtype) -> bool:
        """Whether every value of ``v`` is one of ``dtype`` (float32: of at most 24 bits, a
        product of two exact in binary64; float16), or not finite."""
        key = ("fits", dtype.__name__, _key(v))
        hit = self.memo.get(key)
        if hit is None:
            with np.errstate(all="ignore"):
                a = np.asarray(v)
                fits = a.dtype != LD and bool(np.all(
                    (a.astype(dtype).astype(np.float64) == a) | ~np.isfinite(a)))
            hit = self.memo[key] = (fits, v)
        return hit[0]

    def _small(self, v) -> bool:
        return self._fits(v, np.float32)

    def _cast(self, kind: str, a, b, c=None):
        """a*b, a+b or a*b + c rounded by numpy's casts where they round as the work does, else
        None.  With operands of at most 24 bits: a product is exact in binary64; a sum rounded
        to binary64 rounds to float32 as the exact sum does (53 >= 2*24 + 2, Figueroa), and so
        does a fused sum rounded to odd in binary64 (a TwoSum pair: 53 >= 24 + 2) to any
        format of at most 51 bits; float32 to float16 or bfloat16 is the second rounding of
        work through float32."""
        first, then = self.exact.first, self.exact.then
        if not (self.narrow and self._small(a) and self._small(b)):
            return None
        half = first.name == "float16" and then is None and HALF_CAST_ONCE
        if not (first.name == "float32" or half):
            return None
        if half and kind == "add" and not (self._fits(a, np.float16)
                                           and self._fits(b, np.float16)):
            return None  # (a sum of two float16 values is exact in binary64)
        with np.errstate(all="ignore"):
            if kind == "mul":
                x = np.asarray(a * b)
            elif kind == "add":
                x = np.asarray(a + b)
            else:
                x = _odd(*two_sum(a * b, c))
            if half:
                return x.astype(np.float16).astype(np.float64)
            r = x.astype(np.float32)
            if then is None:
                return r.astype(np.float64)
            if then.name == "float16":
                return r.astype(np.float16).astype(np.float64)
            if then.name == "bfloat16":
                return _bfloat16(r).astype(np.float64)
        return None

    def _operand(self, v):
        """``v`` as the arithmetic takes it: a numpy value; x87 values outside x87 work are not
        guaranteed (a declared binary64-or-narrower buffer of float64 parameters in x87 work)."""
        if isinstance(v, float):
            return np.float64(v)
        if v.dtype == LD and not self.x87:
            self._flag(True)
            return v.astype(np.float64)
        return v

    def _arith(self, *args) -> VariantArithmetic:
        """The arithmetic for these operands: the TwoProduct one where a product may be inexact
        in binary64 (work rounding to a format of at most 24 bits)."""
        if self.narrow and not all(self._small(a) for a in args[:2]):
            return self.wide
        return self.exact

    # -- the operations ------------------------------------------------------------------------

    def mul(self, a, b):
        return self._op("mul", self._mul, a, b)

    def _mul(self, a, b):
        quick = self._cast("mul", a, b)
        if quick is not None:
            return quick
        # (a TwoProduct pair rounded once; where it may underflow or overflow, the product
        # rounds to a zero of its sign or to an infinity in a format of at most 24 bits)
        return self._arith(a, b).mul(self._operand(a), self._operand(b))

    def add(self, a, b):
        return self._op("add", self._add, a, b)

    def _add(self, a, b):
        quick = self._cast("add", a, b)
        if quick is not None:
            return quick
        return self.exact.add(self._operand(a), self._operand(b))

    def fma(self, a, b, c):
        return self._op("fma", self._fma, a, b, c)

    def _fma(self, a, b, c):
        quick = self._cast("fma", a, b, self._operand(c))
        if quick is not None:
            return quick
        W = self._arith(a, b)
        value, bad = W.fma(self._operand(a), self._operand(b), self._operand(c))
        self._flag(bad)
        return value

    def neg(self, a):
        return self._op("neg", lambda v: -v, a)

    def store(self, value):
        return self._op("store", lambda v: np.asarray(self.exact.store(v), dtype=np.float64),
                        value)


def _shared(value: np.ndarray, distinct: list) -> np.ndarray:
    """``value``, or the earlier array with its bits on every step (so that the memo sees one
    operand)."""
    bits = value.view(np.uint64)
    for other in distinct:
        if np.array_equal(bits, other.view(np.uint64)):
            return other
    distinct.append(value)
    return value


def sgd_evaluations_batch(fmt: "Format | str", cols: Mapping[str, Optional[np.ndarray]],
                          options: Options, model: "Model | str" = "ieee"
                          ) -> tuple[dict[str, dict[str, Optional[np.ndarray]]], np.ndarray]:
    """Every legal evaluation of one step of a run for arrays of steps: by name (the names and
    order of ``optim_rounded.sgd_evaluations``), per quantity of ``RUN_QUANTITIES`` a float64
    array (a buffer None where the options keep none); and the steps these values do not
    guarantee (a boolean mask: the scalar function decides them).

    ``cols``: float64 arrays ``w, b, x, t, lr`` and ``buf_w, buf_b`` (values of the buffer
    format; both None: every step is a first step).  The values of the other steps are those
    of ``sgd_evaluations`` bit for bit."""
    fmt = get_format(fmt)
    model = check_run_model(model, fmt, options)
    if model.ftz:  # (the optimiser's inputs read as zero: the scalar path's alone)
        raise ValueError(f"the batch path does not cover {model.name}; use the scalar path")
    run = run_evaluations(fmt, options, model)
    inputs = {k: np.ascontiguousarray(cols[k], dtype=np.float64) for k in INPUTS}
    n = len(inputs["w"])
    given = {theta: cols.get(f"buf_{theta}") for theta in ("w", "b")}
    if (given["w"] is None) != (given["b"] is None):
        raise ValueError("both parameters have a buffer, or neither")
    if given["w"] is None and options.rules.zero_state and options.buffered:
        given = {theta: np.zeros(n) for theta in given}  # (keras, optax: the zero state, +0)
    first = given["w"] is None
    bufs = {theta: None if first else np.ascontiguousarray(buf, dtype=np.float64)
            for theta, buf in given.items()}
    B = run.buffer
    # what the scalar function refuses: inputs that are not finite values of their formats
    undecided = ~np.isfinite(inputs["lr"])
    for k in ("w", "b", "x", "t"):
        undecided |= ~held(fmt, inputs[k])
    if not first:
        for buf in bufs.values():
            undecided |= ~held(B, buf)
    lr_in_format = bool(held(fmt, inputs["lr"]).all())
    plain: dict[str, dict[str, np.ndarray]] = {}
    distinct: dict[str, list] = {q: [] for q in ("dL_dw", "dL_db")}  # (the memo's operands)
    for v in run.variants:
        values, bad = evaluate_arrays(fmt, v, inputs, lr_in_format)
        undecided |= bad
        plain[v.name] = {q: _shared(values[q], distinct[q]) if q in distinct else values[q]
                         for q in _PLAIN}
    memo: dict = {}
    works: dict[tuple[str, str], ArrayWork] = {}

    def work(f: Format, kind: str) -> ArrayWork:
        if (f.name, kind) not in works:
            works[(f.name, kind)] = ArrayWork(f, kind, memo, undecided)
        return works[(f.name, kind)]

    copies = holds(B, fmt)
    rates: dict[tuple, np.ndarray] = {(): inputs["lr"]}  # lr rounded as each evaluation uses it

    def rate(path: tuple) -> np.ndarray:
        if path not in rates:
            with np.errstate(all="ignore"):
                rates[path] = round_array(path[-1], rate(path[:-1]), work=BINARY64)
        return rates[path]

    out: dict[str, dict[str, Optional[np.ndarray]]] = {}
    for e in run.evaluations:
        v = e.variant
        base = plain[v.name]
        A, Ab = work(fmt, v.work), work(B, buffer_work(model, B, v.work))
        values: dict[str, Optional[np.ndarray]] = {q: base[q] for q in _PLAIN}
        for theta, grad in (("w", "dL_dw"), ("b", "dL_db")):
            new, buf = parameter_evaluation(A, Ab, inputs[theta], base[grad], bufs[theta],
                                            rate(e.lr), options, e.fused, e.c, e.mu_buffer,
                                            first, copies, wd=e.wd, mu=e.mu)
            values[f"{theta}_new"], values[f"buf_{theta}"] = new, buf
        out[e.name] = values
    return out, undecided
