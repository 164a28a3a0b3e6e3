"""What a sweep's tally reads from a chunk's error/bound estimates: per quantity and regime the
case with the largest estimate, and per quantity the count of values outside the bounded domain
(a negative estimate).  numpy's ``argmax`` on each regime's slice is vectorised already; the
count is one compiled loop (numba, where installed) instead of a comparison array and a count
per quantity, which the tally no longer needs unless it says why values are outside."""

from __future__ import annotations

import numpy as np

__all__ = ["regime_reductions", "count_negative"]


def _count_negative_numpy(estimate: np.ndarray) -> np.ndarray:
    return np.count_nonzero(estimate < 0, axis=1).astype(np.int64)


try:
    from numba import njit
except ImportError:  # no numba: numpy's
    count_negative = _count_negative_numpy
else:
    @njit(cache=True, nogil=True)
    def _count(estimate, out):  # pragma: no cover (compiled)
        for k in range(estimate.shape[0]):
            row = estimate[k]
            c = 0
            for i in range(row.shape[0]):
                c += row[i] < 0
            out[k] = c

    def count_negative(estimate: np.ndarray) -> np.ndarray:
        """Per row of ``estimate``, how many values are below 0 (NaN is not)."""
        out = np.empty(estimate.shape[0], dtype=np.int64)
        _count(np.ascontiguousarray(estimate, dtype=np.float64), out)
        return out


def regime_reductions(estimate: np.ndarray, slices: "list[tuple[str, int, int]]"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(argmax, below): ``argmax[k, g]`` is the first case of regime ``g``'s slice ``(regime,
    a, b)`` with the largest ``estimate[k]`` (numpy's ``argmax``: a NaN counts as the largest;
    -1 for an empty slice); ``below[k]`` counts ``estimate[k] < 0`` over the whole row."""
    argmax = np.full((estimate.shape[0], len(slices)), -1, dtype=np.int64)
    for k in range(estimate.shape[0]):
        row = estimate[k]
        for g, (_, a, b) in enumerate(slices):  # (contiguous: twice as fast as axis=1)
            if b > a:
                argmax[k, g] = a + int(row[a:b].argmax())
    return argmax, count_negative(estimate)
