"""The judgement of one value against its exact pair and bound, written once with operators and
``ops``: numpy runs it on arrays (``verdict``) and ``kernel`` traces it into compiled loops.

A quantity in the bounded domain fails when the returned value is not finite, not a value of the
format, or when ``|computed - exact|`` exceeds the bound plus the reference's own error (exact
TwoSum residuals and ``delta``).  Where the error lies between the lowest and the highest value
the scalar bound can have (``chain.*Arithmetic.interval``), the value is undecided (status NEAR)
and ``reference.judge`` decides it.
"""

from __future__ import annotations

import math
from typing import Any

from ..formats import Format
from ..judge import NONNEGATIVE
from ..step import OPTIONAL, REQUIRED
from .arith import Work, round_to, two_sum
from .chain import BAND

__all__ = ["OK", "BEYOND", "NEAR", "OUT_OF_DOMAIN", "NOT_FINITE", "NOT_IN_FORMAT", "WRONG_ZERO",
           "ROWS", "NONNEGATIVE",
           "judge_values", "estimate_values"]

#: Status of one value.  NEAR: too close to the bound to decide in the work type;
#: OUT_OF_DOMAIN: a non-finite value where an admitted evaluation may overflow (whether it is
#: one an admitted evaluation gives is for ``reference.judge`` with the case's legal values);
#: WRONG_ZERO: -0 for a quantity that is never negative.
OK, BEYOND, NEAR, OUT_OF_DOMAIN, NOT_FINITE, NOT_IN_FORMAT, WRONG_ZERO = range(7)
#: The rows of a block of outputs, in order: the required quantities, then dL_dy if present.
ROWS = REQUIRED + OPTIONAL




def judge_values(ops: Any, fmt: Format, work: Work, c, pair, bound, ood, low, high,
                 nonnegative: bool = False):
    """(status, error/bound) of computed values ``c`` against their exact pairs and bounds;
    where an admitted evaluation may overflow (``ood``), finite values are held to the bound
    all the same.  ``nonnegative``: a -0 is a wrong zero."""
    finite = ops.isfinite(c)
    overflowed = ops.logical_and(ood, ops.logical_not(finite))
    d1, d1e = two_sum(c, -pair.hi)
    z, ze = two_sum(d1e, -pair.lo)
    d, de = two_sum(d1, z)
    err = abs(d)  # |c - exact| up to ``reference``: exact residuals plus the pair's delta
    reference = (abs(ze) + abs(de) + pair.delta) * (1 + 4 * work.u)
    in_format = round_to(fmt, c, None, work, ops) == c
    # (differences first: err and the bound are close, so err - bound is exact)
    beyond = (err - high) - reference > 0
    near = (err - low) + reference > 0
    sel = ops.select
    ok = OK
    if nonnegative:
        ok = sel(ops.logical_and(c == 0, ops.copysign(1.0, c) < 0), WRONG_ZERO, OK)
    status = sel(overflowed, OUT_OF_DOMAIN, sel(ops.logical_not(finite), NOT_FINITE, sel(
        ops.logical_not(in_format), NOT_IN_FORMAT, sel(beyond, BEYOND, sel(near, NEAR, ok)))))
    positive = bound > 0
    ratio = sel(positive, err / sel(positive, bound, 1.0), sel(err == 0, 0.0, math.inf))
    ratio = sel(overflowed, math.nan, sel(finite, ratio, math.inf))
    return status, ratio


def estimate_values(ops: Any, fmt: Format, work: Work, c, pair, bound, ood,
                    nonnegative: bool = False):
    """(attention, estimate) without error-free transformations, for screening sweeps:
    |c - exact| <= |fl(c - hi)|(1 + 2u) + |lo| + delta, so a value in the format whose estimate
    is below the bound (by the band) is within it; any other value needs attention (the full
    judgement), and so does a -0 of a ``nonnegative`` quantity.  A non-finite value where an
    admitted evaluation may overflow gets estimate -1 (outside the bounded domain) and no
    attention: whether an admitted evaluation gives it is the exact level's to say.  The
    estimate is >= error/bound, by ~1e-16."""
    u = work.u
    quick = (abs(c - pair.hi) * (1 + 2 * u) + abs(pair.lo) + pair.delta) * (1 + 4 * u)
    fine = ops.logical_and(quick <= bound * (1 - BAND), round_to(fmt, c, None, work, ops) == c)
    if nonnegative:
        fine = ops.logical_and(fine, ops.logical_not(ops.logical_and(
            c == 0, ops.copysign(1.0, c) < 0)))
    overflowed = ops.logical_and(ood, ops.logical_not(ops.isfinite(c)))
    sel = ops.select
    attention = sel(overflowed, 0, sel(fine, 0, 1))
    estimate = sel(overflowed, -1.0, sel(bound > 0, quick / sel(bound > 0, bound, 1.0), 0.0))
    return attention, estimate
