"""The one judgement: is a computed value of a quantity one the declared model admits?

A quantity in the bounded domain conforms when its value is finite, is a value of the format,
and lies within its bound of the exact value: ``|computed - exact| <= bound``, compared exactly
(integer arithmetic).  Outside the domain nothing is checked.  Every site that judges a value
(the property suite, the batch path's undecided values, the cross-check, the soundness run,
vector verification, replay) calls :func:`judge`; the batch path (``reference.batch``) gives the
same verdict for arrays and hands it every value it cannot decide itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Mapping

from .bounds import IEEE, Bound, Model, OutOfDomain, case_bounds, get_model
from .exact import exact_step
from .formats import Format, get_format
from .step import INPUTS, REQUIRED

__all__ = ["Judgement", "judge", "judge_case", "OK", "VIOLATION", "OUT_OF_DOMAIN",
           "NOT_FINITE", "NOT_IN_FORMAT", "OUTSIDE_BOUND"]

OK, VIOLATION, OUT_OF_DOMAIN = "ok", "violation", "out of domain"
#: Why a value is a violation, in the order they are tested.
NOT_FINITE, NOT_IN_FORMAT, OUTSIDE_BOUND = "not finite", "not a value of the format", \
    "outside its bound"


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


def judge(fmt: "Format | str", quantity: str, observed: float, exact: Any, bound: Bound
          ) -> Judgement:
    """The verdict on ``observed`` (a binary64 value) for a quantity whose exact value is
    ``exact`` (float, Fraction or mpf) and whose bound is ``bound`` (or OutOfDomain)."""
    fmt = get_format(fmt)
    exact_q = exact if isinstance(exact, Fraction) else Fraction(*_parts(exact))
    observed = float(observed)
    if isinstance(bound, OutOfDomain):
        return Judgement(quantity, observed, exact_q, bound, OUT_OF_DOMAIN, bound.reason,
                         math.nan)
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
    return Judgement(quantity, observed, exact_q, bound, OK, "", ratio)


def judge_case(fmt: "Format | str", case: Iterable[float], outputs: Mapping[str, float],
               model: "Model | str" = IEEE, *, bounds: "Mapping[str, Bound] | None" = None,
               exact: "Mapping[str, Any] | None" = None,
               quantities: "Iterable[str] | None" = None) -> dict[str, Judgement]:
    """The verdict on each quantity an implementation returned for one case (by default the
    required ones and dL_dy when present); ``bounds`` and ``exact`` may be passed in when the
    caller has them already."""
    fmt, model = get_format(fmt), get_model(model)
    case = tuple(case)
    if bounds is None:
        bounds = case_bounds(fmt, dict(zip(INPUTS, case)), model)
    if exact is None:
        exact = exact_step(*case).as_fractions()
    if quantities is None:
        quantities = REQUIRED + (("dL_dy",) if "dL_dy" in outputs else ())
    return {q: judge(fmt, q, outputs[q], exact[q], bounds[q]) for q in quantities}
