"""The chunks of a seeded campaign: chunk ``index`` of a run with ``seed`` holds the same cases
for every implementation, every run and every number of workers, the campaign regimes in equal
shares (``regimes.CAMPAIGN_REGIMES``)."""

from __future__ import annotations

import numpy as np

from reference.formats import Format
from reference.step import INPUTS, Case

from .regimes import CAMPAIGN_REGIMES, regime_arrays, regime_cases

__all__ = ["shares", "chunk_cases", "chunk_case_list"]


def shares(n: int) -> list[tuple[str, int]]:
    """(regime, number of cases) of a chunk of ``n`` cases, in the campaign order."""
    k = len(CAMPAIGN_REGIMES)
    return [(regime, n // k + (1 if i < n % k else 0)) for i, regime in enumerate(CAMPAIGN_REGIMES)]


def chunk_cases(fmt: Format, seed: int, index: int, n: int
                ) -> tuple[dict[str, np.ndarray], list[tuple[str, int, int]]]:
    """The cases of chunk ``index`` as arrays (``regimes.BlockSampler``, one lr per block) and
    the regimes' slices (regime, start, stop)."""
    rng = np.random.default_rng([seed, index])
    parts, slices, start = [], [], 0
    for regime, size in shares(n):
        if size == 0:
            continue
        parts.append(regime_arrays(fmt, regime, rng, size))
        slices.append((regime, start, start + size))
        start += size
    cols = {name: np.concatenate([p[j] for p in parts]) for j, name in enumerate(INPUTS)}
    return cols, slices


def chunk_case_list(fmt: Format, rng: np.random.Generator, n: int) -> list[tuple[str, Case]]:
    """``n`` cases (``regimes.CaseSampler``, one lr per case) with their regimes."""
    out: list[tuple[str, Case]] = []
    for regime, size in shares(n):
        if size:
            out += [(regime, case) for case in regime_cases(fmt, regime, rng, size)]
    return out
