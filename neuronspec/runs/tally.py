"""What a run counts per quantity: one tally type for check, sweep and soundness."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional

__all__ = ["QuantityTally", "KEEP", "RATIOS_EVERY"]

#: First violations kept per quantity (each with what reproduces it).
KEEP = 5
#: Sweeps compute the error/bound of every RATIOS_EVERY-th case (and of every case the exact
#: level leaves); the exact level decides the other values (``sweep._tally_explained``).
RATIOS_EVERY = 256


@dataclass
class QuantityTally:
    """Values judged of one quantity: how many were checked, outside the bounded domain,
    violations and decided by the scalar path (batch runs); the largest error/bound with the
    case that gave it, the largest per regime and the first violations; at the exact level, the values explained (per admitted evaluation) and not."""

    checked: int = 0
    #: of the checked values, those whose error/bound was computed (None: every one); sweeps
    #: measure a sample and let the exact level decide the rest
    measured: Optional[int] = None
    out_of_domain: int = 0
    violations: int = 0
    resolved: int = 0
    max_ratio: float = 0.0
    worst: Optional[dict] = None
    by_regime: dict = field(default_factory=dict)
    first_violations: list = field(default_factory=list)
    #: why the values outside the bounded domain are (``bounds.overflow_words``) -> count,
    #: where the run said (check's phases; plain sweeps count them without saying why)
    out_of_domain_why: dict = field(default_factory=dict)
    # the exact level: values equal bit for bit to an admitted evaluation's, per evaluation
    # (the first admitted one that gives the value), and those none gives
    explained: int = 0
    unexplained: int = 0
    by_variant: dict = field(default_factory=dict)
    first_unexplained: list = field(default_factory=list)

    def explained_by(self, counts: dict) -> None:
        """Values explained by each evaluation (name -> count)."""
        for name, k in counts.items():
            self.explained += k
            self.by_variant[name] = self.by_variant.get(name, 0) + k

    def not_explained(self, count: int, records: "list[dict]") -> None:
        """``count`` values no admitted evaluation gives; ``records`` describe the first."""
        self.unexplained += count
        room = KEEP - len(self.first_unexplained)
        self.first_unexplained.extend(records[:max(room, 0)])

    def saw(self, ratio: float, regime: str, record: Callable[[], dict]) -> None:
        """A value in the domain with error/bound ``ratio``; ``record`` describes its case."""
        if ratio > self.by_regime.get(regime, -1.0):
            self.by_regime[regime] = ratio
        if ratio > self.max_ratio or self.worst is None:
            self.max_ratio, self.worst = ratio, record()

    def outside(self, why: str, count: int = 1) -> None:
        """``count`` values outside the bounded domain, for the reason ``why``."""
        self.out_of_domain += count
        self.outside_because(why, count)

    def outside_because(self, why: str, count: int) -> None:
        """Of the values counted outside the bounded domain, ``count`` are for ``why``."""
        self.out_of_domain_why[why] = self.out_of_domain_why.get(why, 0) + count

    def violated(self, record: Callable[[], dict]) -> None:
        self.violations += 1
        if len(self.first_violations) < KEEP:
            self.first_violations.append(record())

    def merge(self, other: "QuantityTally") -> None:
        if self.measured is not None or other.measured is not None:
            self.measured = (self.checked if self.measured is None else self.measured) + (
                other.checked if other.measured is None else other.measured)
        self.checked += other.checked
        self.out_of_domain += other.out_of_domain
        self.violations += other.violations
        self.resolved += other.resolved
        if other.worst is not None and (self.worst is None or other.max_ratio > self.max_ratio):
            self.max_ratio, self.worst = other.max_ratio, other.worst
        for k, v in other.by_regime.items():
            self.by_regime[k] = max(self.by_regime.get(k, 0.0), v)
        self.first_violations = (self.first_violations + other.first_violations)[:KEEP]
        for why, k in other.out_of_domain_why.items():
            self.outside_because(why, k)
        self.explained_by(other.by_variant)
        self.explained += other.explained - sum(other.by_variant.values())
        self.not_explained(other.unexplained, other.first_unexplained)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "QuantityTally":
        """A tally from its :meth:`as_dict` (records written before a field existed lack it)."""
        known = {f.name for f in fields(cls)}
        tally = cls(**{k: v for k, v in data.items() if k in known})
        tally.by_regime = dict(tally.by_regime)
        tally.first_violations = list(tally.first_violations)
        tally.by_variant = dict(tally.by_variant)
        tally.first_unexplained = list(tally.first_unexplained)
        tally.out_of_domain_why = dict(tally.out_of_domain_why)
        return tally


def finite_or_text(x: float) -> Any:
    """A number for JSON: itself if finite, else its name ("inf", "nan")."""
    return x if math.isfinite(x) else str(x)
