"""The float64 domain screen (reference.batch.domain) against the bound chain's own flags."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from neuronspec.cases.chunks import chunk_cases
from neuronspec.cases.regimes import REGIMES, regime_arrays
from reference.batch.domain import UNDECIDED, domain_screen
from reference.batch.verdict import overflow_origins
from reference.formats import get_format
from reference.step import INPUTS

FLOAT64 = get_format("float64")


@pytest.mark.parametrize("model", ["ieee", "strict"])
@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_every_decided_origin_is_the_chains(regime, model):
    rng = np.random.default_rng(zlib.crc32(f"{regime} {model}".encode()))
    cols = dict(zip(INPUTS, regime_arrays(FLOAT64, regime, rng, 400)))
    screen = domain_screen(FLOAT64, cols)
    chain = overflow_origins(FLOAT64, cols, model)
    for q, origin in chain.items():
        decided = screen[q] != UNDECIDED
        assert np.array_equal(screen[q][decided], origin[decided]), q


def test_it_decides_nearly_every_campaign_case_both_ways():
    """A screen that decided nothing would pass the test above: it must decide, inside and
    outside the domain alike."""
    cols, _ = chunk_cases(FLOAT64, 7, 0, 1 << 15)
    screen = domain_screen(FLOAT64, cols)
    for q, origin in screen.items():
        assert np.mean(origin == UNDECIDED) < 0.05, q
        assert np.mean(origin == -1) > 0.5 and np.mean(origin >= 0) > 0.02, q


def test_compiled_and_numpy_screens_agree():
    pytest.importorskip("numba")
    cols, _ = chunk_cases(FLOAT64, 8, 0, 1 << 14)
    a, b = domain_screen(FLOAT64, cols), domain_screen(FLOAT64, cols, engine="numpy")
    for q in a:
        assert np.array_equal(a[q], b[q]), q


def test_only_float64():
    with pytest.raises(ValueError, match="float64"):
        domain_screen("float32", {k: np.ones(3) for k in INPUTS})
