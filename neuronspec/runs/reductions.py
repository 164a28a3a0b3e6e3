"""What a sweep's tally reads from a chunk's error/bound estimates: per quantity and regime the
case with the largest estimate, and per quantity the count of values outside the bounded domain
(a negative estimate); and, where the exact level decides, the non-finite values of the cases
the bound chain does not see (``nonfinite_counts``).  With numba, one compiled pass over the estimates (read from memory
once, not once per numpy call: they are written a whole chunk before); numpy's otherwise, the
same answers (``tests/test_sweep.py``)."""

from __future__ import annotations

import numpy as np

__all__ = ["regime_reductions", "regime_reductions_numpy", "nonfinite_counts",
           "nonfinite_counts_numpy"]


def regime_reductions_numpy(estimate: np.ndarray, slices: "list[tuple[str, int, int]]"
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
    return argmax, np.count_nonzero(estimate < 0, axis=1).astype(np.int64)


def nonfinite_counts_numpy(block: np.ndarray, skip: np.ndarray) -> np.ndarray:
    """Per row of ``block``, the non-finite values of the cases (columns) not in ``skip``."""
    return np.count_nonzero(~np.isfinite(block) & ~skip, axis=1).astype(np.int64)


try:
    from numba import njit

    from ..cases.compiled import bits_of_float, float_of_bits
except ImportError:  # no numba: numpy's
    regime_reductions = regime_reductions_numpy
    nonfinite_counts = nonfinite_counts_numpy
else:
    _MAGNITUDE = np.int64(0x7FFFFFFFFFFFFFFF)

    #: Values per block of the first pass: the largest key of each block is kept, so that the
    #: second pass, to the first occurrence of the largest, reads one block.
    _BLOCK = 256

    @njit(inline="always")
    def _key(v):
        """An int64 in the order of the binary64 values (-0 just below +0; NaN aside)."""
        bits = np.int64(bits_of_float(v))
        return bits ^ ((bits >> 63) & _MAGNITUDE)

    @njit(cache=True, nogil=True, error_model="numpy")
    def _reductions(estimate, starts, stops, argmax, below):  # pragma: no cover (compiled)
        tops = np.empty((estimate.shape[1] + _BLOCK - 1) // _BLOCK + starts.shape[0],
                        dtype=np.int64)
        for k in range(estimate.shape[0]):
            row = estimate[k]
            negative = 0
            for g in range(starts.shape[0]):
                a, b = starts[g], stops[g]
                if b <= a:
                    argmax[k, g] = -1
                    continue
                # first pass, vectorised: the largest key of each block, the negative values
                # and the NaNs (integer keys: a float comparison chain does not vectorise)
                # (on views indexed from 0: an index the compiler cannot prove non-negative is
                # wrapped around, and the loop is not vectorised)
                top = np.iinfo(np.int64).min
                nans = 0
                blocks = 0
                part = row[a:b]
                for start in range(0, b - a, _BLOCK):
                    block = part[start:start + _BLOCK]
                    block_top = np.iinfo(np.int64).min
                    for i in range(block.shape[0]):
                        v = block[i]
                        key = _key(v)
                        block_top = key if key > block_top else block_top
                        negative += v < 0
                        nans += v != v
                    tops[blocks] = block_top
                    blocks += 1
                    top = block_top if block_top > top else top
                best = a
                if nans:  # numpy's argmax: the first NaN
                    while row[best] == row[best]:
                        best += 1
                else:
                    value = float_of_bits(top ^ ((top >> 63) & _MAGNITUDE))
                    if value != 0:  # the first block holding the largest (for a zero, the
                        # first zero of either sign: from the start)
                        j = 0
                        while tops[j] != top:
                            j += 1
                        best = a + j * _BLOCK
                    while row[best] != value:
                        best += 1
                argmax[k, g] = best
            below[k] = negative

    def regime_reductions(estimate: np.ndarray, slices: "list[tuple[str, int, int]]"
                          ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`regime_reductions_numpy` in one compiled pass (numpy's where the slices do
        not cover the row one after the other: the pass counts over them)."""
        estimate = np.ascontiguousarray(estimate, dtype=np.float64)
        starts = np.array([a for _, a, _ in slices], dtype=np.int64)
        stops = np.array([b for _, _, b in slices], dtype=np.int64)
        n = estimate.shape[1]
        if len(slices) == 0 or starts[0] != 0 or stops[-1] != n or \
                not np.array_equal(starts[1:], stops[:-1]):
            return regime_reductions_numpy(estimate, slices)
        argmax = np.empty((estimate.shape[0], len(slices)), dtype=np.int64)
        below = np.empty(estimate.shape[0], dtype=np.int64)
        _reductions(estimate, starts, stops, argmax, below)
        return argmax, below

    @njit(cache=True, nogil=True, error_model="numpy")
    def _nonfinite(block, counts):  # pragma: no cover (compiled)
        for k in range(block.shape[0]):
            row = block[k]
            c = 0
            for i in range(row.shape[0]):
                v = row[i]
                c += (v - v) != 0  # (v - v: 0 for a finite v, else NaN)
            counts[k] = c

    def nonfinite_counts(block: np.ndarray, skip: np.ndarray) -> np.ndarray:
        """:func:`nonfinite_counts_numpy`: a compiled count over every case (numpy's: 8 ns a
        case), less numpy's over the few skipped."""
        counts = np.empty(block.shape[0], dtype=np.int64)
        _nonfinite(np.ascontiguousarray(block, dtype=np.float64), counts)
        idx = np.flatnonzero(skip)
        return counts - np.count_nonzero(~np.isfinite(block[:, idx]), axis=1)
