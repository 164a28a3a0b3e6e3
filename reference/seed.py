"""The seed notebook's example step, evaluated by the exact reference and every bundled
implementation in every format it supports: the main job's table until the checker lands."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import mpmath

from .bundled import BUNDLED, ImplementationUnavailable, load_bundled
from .exact import QUANTITIES, exact_step
from .formats import FORMATS, Format, float_hex, to_fraction
from .rounded import CANONICAL, evaluate

__all__ = ["SEED_LITERALS", "SeedRow", "SeedSection", "seed_sections", "render_seed", "exact_decimal"]

#: The seed's inputs as the notebook writes them (decimal literals).
SEED_LITERALS: dict[str, str] = {"w": "0.5", "b": "-0.1", "x": "2.0", "t": "1.0", "lr": "0.1"}


@dataclass(frozen=True)
class SeedRow:
    source: str  # "exact", "correctly rounded", or an implementation name
    values: dict[str, float]  # quantity -> value (float; mpf for the exact row)
    ulps: dict[str, "Fraction | float | None"]


@dataclass(frozen=True)
class SeedSection:
    fmt: Format
    inputs: dict[str, float]
    rows: list[SeedRow]
    notes: list[str]


def seed_sections(formats: "list[str] | None" = None) -> list[SeedSection]:
    """Evaluate the seed example; the inputs are the seed's literals rounded to each format."""
    sections = []
    for name in formats or ["float64", "float32"]:
        fmt = FORMATS[name]
        inputs = {k: fmt.parse(v) for k, v in SEED_LITERALS.items()}
        exact = exact_step(**inputs)
        rows = [SeedRow("exact", {q: exact[q] for q in QUANTITIES}, {q: None for q in QUANTITIES})]
        rounded = {q: fmt.round(exact[q]) for q in QUANTITIES}
        rows.append(SeedRow("correctly rounded", rounded,
                            {q: fmt.ulp_error(rounded[q], exact[q]) for q in QUANTITIES}))
        canonical = evaluate(fmt, variant=CANONICAL, **inputs)
        rows.append(SeedRow("canonical evaluation", canonical,
                            {q: fmt.ulp_error(canonical[q], exact[q]) for q in QUANTITIES}))
        notes = []
        for impl in BUNDLED:
            try:
                result = load_bundled(impl)(dtype=name, **inputs)
            except NotImplementedError:
                continue
            except ImplementationUnavailable as exc:
                notes.append(f"{impl}: not run ({exc})")
                continue
            values = {q: float(result[q]) for q in QUANTITIES if q in result}
            rows.append(SeedRow(impl, values,
                                {q: fmt.ulp_error(v, exact[q]) for q, v in values.items()}))
        sections.append(SeedSection(fmt, inputs, rows, notes))
    return sections


def exact_decimal(value: "float | mpmath.mpf", digits: int = 25) -> str:
    """The exact decimal expansion of a binary value, cut (not rounded) to ``digits``
    significant digits with a trailing '…' when longer; scientific outside 1e-5..1e17."""
    q = to_fraction(value)
    if q == 0:
        return "-0" if isinstance(value, float) and math.copysign(1.0, value) < 0 else "0"
    sign = "-" if q < 0 else ""
    n, d = abs(q.numerator), q.denominator
    k = d.bit_length() - 1  # d == 2**k for a binary value, so n/d == n*5**k / 10**k
    full = str(n * 5**k)
    e10 = len(full) - 1 - k  # decimal exponent of the leading digit
    sig = full.rstrip("0")
    mark = ""
    if len(sig) > digits:
        sig, mark = sig[:digits], "…"
    if -5 <= e10 < 17:
        if e10 >= 0:
            sig = sig.ljust(e10 + 1, "0")
            whole, frac = sig[: e10 + 1], sig[e10 + 1:]
        else:
            whole, frac = "0", "0" * (-e10 - 1) + sig
        return sign + whole + ("." + frac if frac else "") + mark
    return f"{sign}{sig[0]}{'.' + sig[1:] if len(sig) > 1 else ''}{mark}e{e10:+d}"


def render_seed(sections: list[SeedSection]) -> str:
    """The seed example as a plain-text table, under 100 columns."""
    out = [
        "neuronspec: the seed example, y = w*x + b, L = (y - t)^2 / 2, one SGD step",
        "Inputs are the seed's literals "
        + ", ".join(f"{k}={v}" for k, v in SEED_LITERALS.items())
        + ", rounded to each format.",
        "error = |value - exact| in ulps of the exact value in that format.",
    ]
    for sec in sections:
        fmt = sec.fmt
        out += ["", f"== {fmt.name} (p={fmt.p}, u=2^-{fmt.p}) " + "=" * (70 - len(fmt.name))]
        out.append("inputs: " + "  ".join(f"{k}={float_hex(v)}" for k, v in sec.inputs.items()))
        width = max(len(r.source) for r in sec.rows)
        out.append(f"  {'quantity':<8} {'source':<{width}}  {'value':<28} {'hex':<22} {'error':>9}")
        for q in QUANTITIES:
            for i, row in enumerate(sec.rows):
                if q not in row.values:
                    continue
                v = row.values[q]
                label = q if i == 0 else ""
                if row.source == "exact":
                    out.append(f"  {label:<8} {row.source:<{width}}  {exact_decimal(v, 25)}")
                    continue
                e = row.ulps[q]
                err = "inf" if e == float("inf") else f"{float(e):.2f}"
                out.append(f"  {label:<8} {row.source:<{width}}  {v!r:<28} "
                           f"{float_hex(v):<22} {err:>9}")
        out += [f"  note: {n}" for n in sec.notes]
    return "\n".join(out)
