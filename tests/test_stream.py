"""The compiled draws (``neuronspec.cases.stream``) are numpy's, bit for bit: each draw, the
generator's state after it, every regime's arrays and whole chunks of a seeded sweep (so the
recorded sweeps' cases do not depend on numba being installed)."""

from __future__ import annotations

import numpy as np
import pytest

from neuronspec.cases import regimes
from neuronspec.cases.chunks import chunk_cases
from reference.formats import get_format

pytest.importorskip("numba")

from neuronspec.cases.stream import Stream  # noqa: E402

FORMATS = ("float16", "bfloat16", "float32", "float64")


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == np.float64:
        a, b = a.view(np.uint64), b.view(np.uint64)
    return a.shape == b.shape and np.array_equal(a, b)


def test_each_draw_and_the_state_after_it_are_numpys():
    want, got = np.random.default_rng([7, 3]), np.random.default_rng([7, 3])
    for step in range(3):  # interleaved, so that the 32-bit half kept between calls matters
        draws = [
            (lambda r: r.bit_generator.random_raw(101), lambda s: s.raw(101)),
            (lambda r: r.integers(-4, 5, 333), lambda s: s.integers(-4, 5, 333)),
            (lambda r: r.random(77), lambda s: s.random(77)),
            (lambda r: r.integers(0, 3, 1), lambda s: s.integers(0, 3, 1)),
            (lambda r: r.uniform(0.5, 3.0, 50), lambda s: s.uniform(0.5, 3.0, 50)),
            (lambda r: r.random(64) < 0.3, lambda s: s.below(0.3, 64)),
            (lambda r: r.integers(5, 6, 9), lambda s: s.integers(5, 6, 9)),  # no draw
            (lambda r: r.choice(np.array([0.5, 1.5, 2.5]), size=40),
             lambda s: s.choice(np.array([0.5, 1.5, 2.5]), 40)),
            (lambda r: r.integers(0, 2**40, 7), lambda s: s.integers(0, 2**40, 7)),  # numpy's
            (lambda r: r.integers(0, 2**32 - 1, 999), lambda s: s.integers(0, 2**32 - 1, 999)),
        ]
        for k, (numpy_draw, stream_draw) in enumerate(draws):
            expected = numpy_draw(want)
            stream = Stream(got)
            assert _same(expected, stream_draw(stream)), (step, k)
            stream.close()
            assert got.bit_generator.state == want.bit_generator.state, (step, k)


def test_the_lanes_give_numpys_draws_at_every_length():
    """``_fill`` runs four lanes of states four steps apart: every length around its start, its
    tail and its lane boundaries gives numpy's draws and leaves numpy's state."""
    want, got = np.random.default_rng(5), np.random.default_rng(5)
    for size in [*range(0, 19), 1023, 1024, 1025]:
        stream = Stream(got)
        assert _same(want.bit_generator.random_raw(size), stream.raw(size)), size
        assert _same(want.random(size), stream.random(size)), size
        stream.close()
        assert got.bit_generator.state == want.bit_generator.state, size


def test_lemire_rejection_is_numpys():
    """A range whose rejection threshold is large: many 32-bit draws are rejected."""
    want, got = np.random.default_rng(11), np.random.default_rng(11)
    span = 3 * 2**30  # 2**32 mod span = 2**30: a quarter of the draws rejected
    stream = Stream(got)
    assert _same(want.integers(0, span, 5000), stream.integers(0, span, 5000))
    stream.close()
    assert got.bit_generator.state == want.bit_generator.state


@pytest.mark.parametrize("name", FORMATS[:3])
def test_rounding_is_numpys(name):
    """``Stream.round`` against ``NumpyDraws.round`` (numpy's casts, ``round_array``) on values
    of every binade around the format's, ties and the overflow threshold included."""
    fmt = get_format(name)
    rng = np.random.default_rng(5)
    e = rng.integers(fmt.emin - fmt.p - 3, fmt.emax + 2, 20_000)
    values = np.ldexp(1.0 + rng.random(20_000), e) * np.where(rng.random(20_000) < 0.5, -1, 1)
    quantum = np.ldexp(1.0, np.maximum(e, fmt.emin) - fmt.p + 1)
    ties = np.ldexp(np.floor(np.ldexp(values, -np.maximum(e, fmt.emin) + fmt.p - 1)) + 0.5,
                    np.maximum(e, fmt.emin) - fmt.p + 1)
    edge = fmt.largest_finite + np.array([0.0, 0.25, 0.5, 0.75]) * quantum.max()
    values = np.concatenate([values, ties, edge, -edge, [0.0, -0.0, np.inf, -np.inf, np.nan]])
    with np.errstate(all="ignore"):
        want = regimes.NumpyDraws.round(fmt, values)
    got = Stream(np.random.default_rng(0)).round(values, fmt.p, fmt.smallest_normal,
                                                 fmt.largest_finite)
    assert _same(want, got)


@pytest.mark.parametrize("name", FORMATS)
def test_regime_arrays_are_numpys(name):
    fmt = get_format(name)
    for regime in regimes.REGIMES:
        want_rng, got_rng = np.random.default_rng(21), np.random.default_rng(21)
        draws = regimes.NumpyDraws(want_rng)
        with np.errstate(all="ignore"):
            want = regimes.REGIMES[regime].draw(regimes.BlockSampler(fmt, want_rng, 2500,
                                                                     draws=draws))
        got = regimes.regime_arrays(fmt, regime, got_rng, 2500)
        want = want[:3] + (np.where(np.isfinite(want[3]), want[3], want[1]), want[4])
        assert all(_same(a, b) for a, b in zip(want, got)), regime
        assert got_rng.bit_generator.state == want_rng.bit_generator.state, regime


@pytest.mark.parametrize("name", FORMATS)
def test_chunks_are_numpys(name, monkeypatch):
    """A seeded chunk draws the same cases with the compiled draws as with numpy's."""
    fmt = get_format(name)
    got = chunk_cases(fmt, 20261126, 3, 9 * 4096 + 5)
    monkeypatch.setattr(regimes, "draws_for", regimes.NumpyDraws)
    want = chunk_cases(fmt, 20261126, 3, 9 * 4096 + 5)
    assert want[1] == got[1]
    assert all(_same(want[0][k], got[0][k]) for k in want[0])
