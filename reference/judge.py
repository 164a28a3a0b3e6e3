"""The one judgement: is a computed value of a quantity one the declared model admits?

Two levels (spec/neuron.md section 7):

- **bounded**: the value is finite, a value of the format, and within its bound of the exact
  value, ``|computed - exact| <= bound``, compared exactly (integer arithmetic).  Where an
  admitted evaluation may overflow (``bounds.OutOfDomain``) a finite value is still held to
  its bound and a non-finite one must be what an admitted evaluation gives; where IEEE 754
  fixes the sign of a zero (the loss is never -0; a zero every admitted evaluation gives with
  one sign) a zero of the other sign fails.
- **exact**: the value is, bit for bit, what one of the admitted evaluations gives
  (``reference.legal``); :func:`explain` says which, or the nearest one.

Every site that judges a value (the property suite, the batch path's undecided values, the
cross-check, the soundness run, vector verification, replay) calls :func:`judge`; the batch path
(``reference.batch``) gives the same verdict for arrays and hands it every value it cannot
decide itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping

from .bounds import IEEE, Bound, Model, OutOfDomain, case_bounds, get_model
from .exact import exact_step
from .formats import Format, get_format
from .legal import Legal, legal_values, value_key
from .step import INPUTS, REQUIRED

__all__ = ["Judgement", "judge", "judge_case", "OK", "VIOLATION",
           "OUT_OF_DOMAIN", "NOT_FINITE", "NOT_IN_FORMAT", "OUTSIDE_BOUND", "WRONG_ZERO",
           "NOT_AN_OVERFLOW", "LEVELS", "NONNEGATIVE"]

OK, VIOLATION, OUT_OF_DOMAIN = "ok", "violation", "out of domain"
#: Why a value is a violation, in the order they are tested.
NOT_FINITE, NOT_IN_FORMAT, OUTSIDE_BOUND = "not finite", "not a value of the format", \
    "outside its bound"
WRONG_ZERO = "a zero of the wrong sign"
NOT_AN_OVERFLOW = "not a result an admitted evaluation gives where one overflows"
#: The levels of the verdict: which one decides an exit status is the caller's choice.
LEVELS = ("bounded", "exact")
#: Quantities that are never negative in any evaluation: their zero is +0.
NONNEGATIVE = ("loss",)


@dataclass(frozen=True)
class Judgement:
    """The verdict on one value: ``verdict`` is OK, VIOLATION or OUT_OF_DOMAIN; ``why`` says
    which violation (or why the value is outside the domain); ``ratio`` is |computed - exact| /
    bound (nan outside the domain, inf for a value that is not finite or an error over a zero
    bound)."""

    quantity: str
    observed: float
    exact: Fraction
    bound: Bound
    verdict: str
    why: str
    ratio: float

    @property
    def ok(self) -> bool:
        return self.verdict == OK

    @property
    def violation(self) -> bool:
        return self.verdict == VIOLATION

    @property
    def error(self) -> "Fraction | None":
        """|computed - exact| (None for a value that is not finite)."""
        if not math.isfinite(self.observed):
            return None
        return abs(Fraction(self.observed) - self.exact)


def _parts(value) -> tuple[int, int]:
    """(numerator, denominator) of an exact value: float, Fraction, int or mpf."""
    if isinstance(value, float):
        return value.as_integer_ratio()
    if isinstance(value, Fraction):
        return value.numerator, value.denominator
    if isinstance(value, int):
        return value, 1
    sign, man, exp, _ = value._mpf_  # mpmath.mpf
    n = -man if sign else man
    return (n << exp, 1) if exp >= 0 else (n, 1 << -exp)


def _divide(num: int, den: int) -> float:
    try:
        return num / den
    except OverflowError:
        return math.inf


def judge(fmt: "Format | str", quantity: str, observed: float, exact: Any, bound: Bound,
          legal: "Legal | None" = None) -> Judgement:
    """The bounded-level verdict on ``observed`` (a binary64 value) for a quantity whose exact
    value is ``exact`` (float, Fraction or mpf) and whose bound is ``bound`` (OutOfDomain where
    an admitted evaluation may overflow).  ``legal``: the case's legal values, for what IEEE 754
    fixes beyond a magnitude (an overflow's result, the sign of a zero); without it a
    non-finite value where overflow is possible is OUT_OF_DOMAIN (not judged)."""
    fmt = get_format(fmt)
    exact_q = exact if isinstance(exact, Fraction) else Fraction(*_parts(exact))
    observed = float(observed)
    overflow = isinstance(bound, OutOfDomain)
    if overflow and not math.isfinite(observed):
        if legal is None:
            return Judgement(quantity, observed, exact_q, bound, OUT_OF_DOMAIN, bound.reason,
                             math.nan)
        if value_key(observed) in legal.nonfinite(quantity):  # an admitted overflow
            return Judgement(quantity, observed, exact_q, bound, OUT_OF_DOMAIN, bound.reason,
                             math.nan)
        return Judgement(quantity, observed, exact_q, bound, VIOLATION, NOT_AN_OVERFLOW,
                         math.inf)
    if overflow:
        if bound.bound is None:
            return Judgement(quantity, observed, exact_q, bound, OUT_OF_DOMAIN, bound.reason,
                             math.nan)
        bound = bound.bound  # a finite value: held to the bound all the same
    if not math.isfinite(observed):
        return Judgement(quantity, observed, exact_q, bound, VIOLATION, NOT_FINITE, math.inf)
    cn, cd = observed.as_integer_ratio()
    vn, vd = exact_q.numerator, exact_q.denominator
    en, ed = abs(cn * vd - vn * cd), cd * vd  # the error, exactly
    bn, bd = _parts(bound)
    if bn == 0:
        ratio, beyond = (0.0, False) if en == 0 else (math.inf, True)
    else:
        num, den = en * bd, bn * ed
        ratio, beyond = _divide(num, den), num > den
    if not fmt.contains(observed):
        return Judgement(quantity, observed, exact_q, bound, VIOLATION, NOT_IN_FORMAT, ratio)
    if beyond:
        return Judgement(quantity, observed, exact_q, bound, VIOLATION, OUTSIDE_BOUND, ratio)
    if observed == 0 and _wrong_zero(quantity, observed, legal):
        return Judgement(quantity, observed, exact_q, bound, VIOLATION, WRONG_ZERO, ratio)
    return Judgement(quantity, observed, exact_q, bound, OK, "", ratio)


def _wrong_zero(quantity: str, observed: float, legal: "Legal | None") -> bool:
    """A zero whose sign IEEE 754 fixes otherwise: -0 for a quantity that is never negative, or
    a sign no admitted evaluation gives its zero (where some admitted evaluation gives one)."""
    sign = math.copysign(1.0, observed)
    if quantity in NONNEGATIVE and sign < 0:
        return True
    if legal is None:
        return False
    signs = legal.zero_signs(quantity)
    return bool(signs) and sign not in signs


def judge_case(fmt: "Format | str", case: Iterable[float], outputs: Mapping[str, float],
               model: "Model | str" = IEEE, *, bounds: "Mapping[str, Bound] | None" = None,
               exact: "Mapping[str, Any] | None" = None,
               quantities: "Iterable[str] | None" = None,
               legal: "Legal | Callable[[], Legal] | None" = None) -> dict[str, Judgement]:
    """The bounded-level verdict on each quantity an implementation returned for one case (by
    default the required ones and dL_dy when present); ``bounds``, ``exact`` and ``legal`` may
    be passed in when the caller has them already (``legal`` is computed where a value needs
    it: a non-finite value where an admitted evaluation may overflow, or a zero; a function
    passed as ``legal`` is called only then)."""
    fmt, model = get_format(fmt), get_model(model)
    case = tuple(case)
    if bounds is None:
        bounds = case_bounds(fmt, dict(zip(INPUTS, case)), model)
    if exact is None:
        exact = exact_step(*case).as_fractions()
    if quantities is None:
        quantities = REQUIRED + (("dL_dy",) if "dL_dy" in outputs else ())
    quantities = tuple(quantities)
    needed = any(_needs_legal(float(outputs[q]), bounds[q]) for q in quantities)
    if callable(legal):
        legal = legal() if needed else None
    elif legal is None and needed:
        legal = legal_values(fmt, case, model)
    return {q: judge(fmt, q, outputs[q], exact[q], bounds[q], legal) for q in quantities}


def _needs_legal(observed: float, bound: Bound) -> bool:
    return observed == 0 or (isinstance(bound, OutOfDomain) and not math.isfinite(observed))
