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
from ..step import OPTIONAL, REQUIRED
from .arith import Work, round_to, two_sum
from .chain import BAND

__all__ = ["OK", "BEYOND", "NEAR", "OUT_OF_DOMAIN", "NOT_FINITE", "NOT_IN_FORMAT", "ROWS",
           "judge_values", "estimate_values"]

#: Status of one value.  NEAR: too close to the bound to decide in the work type.
OK, BEYOND, NEAR, OUT_OF_DOMAIN, NOT_FINITE, NOT_IN_FORMAT = range(6)
#: The rows of a block of outputs, in order: the required quantities, then dL_dy if present.
ROWS = REQUIRED + OPTIONAL


def judge_values(ops: Any, fmt: Format, work: Work, c, pair, bound, ood, low, high):
    """(status, error/bound) of computed values ``c`` against their exact pairs and bounds."""
    finite = ops.isfinite(c)
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
    status = sel(ood, OUT_OF_DOMAIN, sel(ops.logical_not(finite), NOT_FINITE, sel(
        ops.logical_not(in_format), NOT_IN_FORMAT, sel(beyond, BEYOND, sel(near, NEAR, OK)))))
    positive = bound > 0
    ratio = sel(positive, err / sel(positive, bound, 1.0), sel(err == 0, 0.0, math.inf))
    ratio = sel(ood, math.nan, sel(finite, ratio, math.inf))
    return status, ratio


def estimate_values(ops: Any, fmt: Format, work: Work, c, pair, bound, ood):
    """(attention, estimate) without error-free transformations, for screening sweeps:
    |c - exact| <= |fl(c - hi)|(1 + 2u) + |lo| + delta, so a value in the format whose estimate
    is below the bound (by the band) is within it; any other value needs attention (the full
    judgement).  The estimate is >= error/bound, by ~1e-16; -1 outside the domain."""
    u = work.u
    quick = (abs(c - pair.hi) * (1 + 2 * u) + abs(pair.lo) + pair.delta) * (1 + 4 * u)
    fine = ops.logical_and(quick <= bound * (1 - BAND), round_to(fmt, c, None, work, ops) == c)
    sel = ops.select
    attention = sel(ood, 0, sel(fine, 0, 1))
    estimate = sel(ood, -1.0, sel(bound > 0, quick / sel(bound > 0, bound, 1.0), 0.0))
    return attention, estimate
