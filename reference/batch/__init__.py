"""The reference on arrays of cases: exact values, bounds and the verdict of ``reference.judge``
for millions of cases per second.  The same step (``reference.step``) and the same bound chain
(``reference.bounds``) as the scalar path, run on numpy arrays (``arith``, ``chain``,
``judgement``, ``verdict``) and compiled from that same code when numba is installed
(``kernel``)."""

from .arith import (BINARY64, EXTENDED, ArrayOps, Pair, Work, pair_add, pair_mul, pair_square,
                    round_array, round_to, two_prod, two_sum, work_for)
from .chain import BAND, QuantityBound, batch_bounds, exact_pairs
from .judgement import BEYOND, NEAR, NOT_FINITE, NOT_IN_FORMAT, OK, OUT_OF_DOMAIN, ROWS, WRONG_ZERO
from .verdict import Verdict, check_batch, screen_batch

__all__ = ["BINARY64", "EXTENDED", "Work", "work_for", "Pair", "ArrayOps", "two_sum",
           "two_prod", "pair_add", "pair_mul", "pair_square", "round_to", "round_array", "BAND",
           "QuantityBound", "batch_bounds", "exact_pairs", "Verdict", "check_batch",
           "screen_batch", "ROWS", "OK", "BEYOND", "NEAR", "OUT_OF_DOMAIN", "NOT_FINITE",
           "NOT_IN_FORMAT", "WRONG_ZERO"]
