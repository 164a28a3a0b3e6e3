"""``neuronspec example``: the seed notebook's example step, evaluated by the exact reference
and by every bundled implementation in every format it supports (the first table ``make check``
prints)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from reference.exact import QUANTITIES, exact_step
from reference.formats import FORMATS, Format, exact_decimal, float_hex
from reference.rounded import CANONICAL, evaluate
from reference.step import SEED_EXAMPLE

from ..errors import ImplementationError, LoadError
from ..implementations import BUNDLED, load

__all__ = ["ExampleRow", "ExampleSection", "example_sections", "render_example"]


@dataclass(frozen=True)
class ExampleRow:
    source: str  # "exact", "correctly rounded", or an implementation name
    values: dict[str, float]  # quantity -> value (float; mpf for the exact row)
    ulps: dict[str, "Fraction | float | None"]


@dataclass(frozen=True)
class ExampleSection:
    fmt: Format
    inputs: dict[str, float]
    rows: list[ExampleRow]
    notes: list[str]


def example_sections(formats: "list[str] | None" = None) -> list[ExampleSection]:
    """Evaluate the seed example; the inputs are the seed's literals rounded to each format."""
    sections = []
    for name in formats or ["float64", "float32"]:
        fmt = FORMATS[name]
        inputs = {k: fmt.parse(v) for k, v in SEED_EXAMPLE.items()}
        exact = exact_step(**inputs)
        rows = [ExampleRow("exact", {q: exact[q] for q in QUANTITIES},
                           {q: None for q in QUANTITIES})]
        rounded = {q: fmt.round(exact[q]) for q in QUANTITIES}
        rows.append(ExampleRow("correctly rounded", rounded,
                               {q: fmt.ulp_error(rounded[q], exact[q]) for q in QUANTITIES}))
        canonical = evaluate(fmt, variant=CANONICAL, **inputs)
        rows.append(ExampleRow("canonical evaluation", canonical,
                               {q: fmt.ulp_error(canonical[q], exact[q]) for q in QUANTITIES}))
        notes = []
        for spec in BUNDLED:
            try:
                values = load(spec)(name, tuple(inputs.values()))
            except NotImplementedError:
                continue
            except LoadError as exc:
                notes.append(f"{spec}: not run ({exc})")
                continue
            except ImplementationError as exc:
                notes.append(f"{spec}: {exc}")
                continue
            values = {q: values[q] for q in QUANTITIES if q in values}
            rows.append(ExampleRow(spec, values,
                                   {q: fmt.ulp_error(v, exact[q]) for q, v in values.items()}))
        sections.append(ExampleSection(fmt, inputs, rows, notes))
    return sections


def render_example(sections: list[ExampleSection]) -> str:
    """The seed example as a plain-text table, under 100 columns."""
    out = [
        "neuronspec: the seed example, y = w*x + b, L = (y - t)^2 / 2, one SGD step",
        "Inputs are the seed's literals "
        + ", ".join(f"{k}={v}" for k, v in SEED_EXAMPLE.items())
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
