"""The legal values of one case: what each evaluation a model admits gives, bit for bit.

A model admits a finite set of evaluations (``rounded.admitted``: fused multiply-add or not, a
``pow`` square one ulp off, work in a wider format, flush-to-zero, autograd's ``2*r``), each
computed exactly and rounded as IEEE 754 says (``rounded.evaluations``).  Their results,
per quantity, are the **legal values** of the case:

- the *exact level* of the verdict: a computed value is explained when it equals one of them
  bit for bit (signed zeros included; every NaN equals every NaN), and the report names the
  evaluations that give it; a value none gives is *unexplained*, reported with the nearest
  legal value and its distance in ulps;
- the *hull*: the smallest interval holding the finite legal values, a per-case interval as
  tight as the model allows;
- what the bounded level needs where IEEE 754 fixes more than a magnitude: the non-finite
  results an admitted evaluation can produce (where one may overflow) and the sign of a zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable, Optional

from .formats import Format, as_float, get_format
from .model import Model, get_model
from .rounded import admitted, evaluations
from .step import INPUTS, QUANTITIES

__all__ = ["Legal", "Explanation", "legal_values", "admitted_for", "from_results", "value_key"]


def value_key(v: float) -> "tuple | str":
    """What bit-for-bit equality compares: the value and the sign of a zero; NaN is one key."""
    if v != v:
        return "nan"
    return (v, math.copysign(1.0, v))


@dataclass(frozen=True)
class Explanation:
    """The exact-level verdict on one value: the admitted evaluations that give it (empty:
    unexplained), else the nearest legal value, the evaluations giving it and the distance in
    ulps of the format (inf where no legal value is finite or the value is not)."""

    quantity: str
    observed: float
    variants: tuple[str, ...]
    nearest: Optional[float] = None
    nearest_variants: tuple[str, ...] = ()
    ulps: float = math.nan

    @property
    def explained(self) -> bool:
        return bool(self.variants)


@dataclass
class Legal:
    """The legal values of one case under ``model``: per quantity, each distinct value (by
    :func:`value_key`) and the names of the admitted evaluations that give it, in the order
    ``rounded.admitted`` lists them (the simplest first)."""

    fmt: Format
    model: Model
    case: tuple
    values: dict[str, dict] = field(default_factory=dict)  # q -> key -> (value, [names])

    def of(self, q: str) -> list[float]:
        return [v for v, _ in self.values[q].values()]

    def explain(self, q: str, observed: float) -> Explanation:
        hit = self.values[q].get(value_key(float(observed)))
        if hit is not None:
            return Explanation(q, observed, tuple(hit[1]))
        best = None
        for v, names in self.values[q].values():
            if not (math.isfinite(v) and math.isfinite(observed)):
                continue
            d = abs(Fraction(observed) - Fraction(v))
            if best is None or d < best[0]:
                best = (d, v, names)
        if best is None:
            return Explanation(q, observed, (), None, (), math.inf)
        d, v, names = best
        return Explanation(q, observed, (), v, tuple(names), as_float(d / self.fmt.ulp(v)))

    def hull(self, q: str) -> "tuple[float, float] | None":
        """The smallest interval holding the finite legal values (None: none is finite)."""
        finite = [v for v in self.of(q) if math.isfinite(v)]
        return (min(finite), max(finite)) if finite else None

    def nonfinite(self, q: str) -> set:
        """The keys of the non-finite legal values (an admitted evaluation overflows)."""
        return {value_key(v) for v in self.of(q) if not math.isfinite(v)}

    def zero_signs(self, q: str) -> set[float]:
        """The signs (+1.0, -1.0) of the zeros among the legal values."""
        return {math.copysign(1.0, v) for v in self.of(q) if v == 0}


def legal_values(fmt: "Format | str", case: Iterable[float], model: "Model | str" = "ieee",
                 quantities: Iterable[str] = QUANTITIES) -> Legal:
    """The legal values of ``case`` (w, b, x, t, lr) in ``fmt`` under ``model``."""
    fmt, model = get_format(fmt), get_model(model)
    case = tuple(float(v) for v in case)
    found = evaluations(fmt, *case, admitted_for(fmt, model, case))
    legal = Legal(fmt, model, case)
    for q in quantities:  # few distinct results per quantity: compare those, not every variant's
        table: dict = {}
        for index, variants in found.groups[q]:
            value = found.results[index]
            table.setdefault(value_key(value), (value, []))[1].extend(variants)
        legal.values[q] = {key: (value, [found.names[i] for i in sorted(variants)])
                           for key, (value, variants) in table.items()}
    return legal


def admitted_for(fmt: Format, model: Model, case: tuple) -> list:
    """The evaluations ``model`` admits on ``case`` (whose lr may not be a value of fmt)."""
    lr = case[INPUTS.index("lr")]
    lr_in_format = math.isfinite(fmt.round(lr)) and fmt.round(lr) == lr
    return admitted(fmt, model, lr_in_format=lr_in_format)


def from_results(fmt: Format, model: Model, case: tuple, results: dict,
                 quantities: Iterable[str] = QUANTITIES) -> Legal:
    """The legal values from evaluations already made (name -> quantity -> value): every
    evaluation ``model`` admits on the case must be among them."""
    legal = Legal(fmt, model, tuple(case))
    for q in quantities:
        table: dict = {}
        for name, out in results.items():
            v = out[q]
            table.setdefault(value_key(v), (v, []))[1].append(name)
        legal.values[q] = table
    return legal
