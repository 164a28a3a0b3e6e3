"""binary64's compiled fused multiply-add (``kernel.fma_arrays``), which the exact level uses for
float64's fused evaluations, against the scalar definition (``rounded.fl_fma``, exact
rationals rounded once) on every binade, subnormals, cancellation, overflow and zeros."""

from __future__ import annotations

import numpy as np
import pytest

from reference.batch.kernel import fma_arrays
from reference.batch.legal import fma_exact
from reference.formats import FLOAT64
from reference.rounded import Rounder, fl_fma

pytest.importorskip("numba")


def _triples(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)

    def values(lo: int, hi: int) -> np.ndarray:
        m = rng.integers(0, 1 << 52, n, dtype=np.int64)
        e = rng.integers(lo, hi, n)
        sign = rng.choice([-1.0, 1.0], n)
        v = sign * np.ldexp(1.0 + m / 2.0**52, e)
        v[rng.random(n) < 0.02] *= 0.0  # signed zeros
        return v

    a, b = values(-560, 560), values(-560, 560)
    c = values(-1100, 1024)
    near = rng.random(n) < 0.3  # c close to -a*b: cancellation, and exact or tiny sums
    with np.errstate(all="ignore"):
        c[near] = -(a[near] * b[near]) * (1 + rng.integers(-4, 5, near.sum()) * 2.0**-52)
    c[~np.isfinite(c)] = 1.0
    return a, b, c


def test_compiled_fma_is_the_exact_fma_bit_for_bit():
    a, b, c = _triples(40_000, 11)
    got = fma_arrays(a, b, c)
    F = Rounder(FLOAT64)
    want = np.array([fl_fma(F, float(x), float(y), float(z)) for x, y, z in zip(a, b, c)])
    same = got.view(np.uint64) == want.view(np.uint64)
    assert same.all(), [(a[i], b[i], c[i], got[i], want[i]) for i in np.flatnonzero(~same)[:3]]
    assert (np.abs(want) < FLOAT64.smallest_normal).sum() > 100  # subnormal results were met
    assert np.isinf(want).sum() > 100 and (want == 0).sum() > 100


def test_the_exact_level_decides_every_binary64_fma():
    """Where the emulation leaves cases undecided (an underflow or overflow inside), the
    compiled fma decides them: the exact level sends none to the scalar path."""
    a, b, c = _triples(5_000, 12)
    z, undecided = fma_exact(a, b, c, 53)
    assert not undecided.any()
    assert np.array_equal(z.view(np.uint64), fma_arrays(a, b, c).view(np.uint64))


def test_without_numba_the_emulation_gives_the_same_values_where_it_decides(monkeypatch):
    from reference.batch import legal

    a, b, c = _triples(20_000, 13)
    monkeypatch.setattr(legal, "fma_arrays", lambda *args: None)
    with np.errstate(all="ignore"):  # (as its callers run it: overflows inside are flagged)
        z, undecided = legal.fma_exact(a, b, c, 53)
    assert 0 < undecided.mean() < 0.5
    want = fma_arrays(a, b, c)
    assert np.array_equal(z[~undecided].view(np.uint64), want[~undecided].view(np.uint64))
