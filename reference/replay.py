"""One case, replayed: every quantity of an implementation against its exact value and bound,
then every property of the suite on that case."""

from __future__ import annotations

import math
from fractions import Fraction

from .bounds import IEEE, Model, OutOfDomain, case_bounds
from .exact import exact_step
from .formats import Format, as_float, float_hex
from .impls import Implementation, ImplementationError
from .properties import CHECKED, INPUTS, PROPERTIES, PropertyViolation, within_bounds
from .seed import exact_decimal

__all__ = ["replay"]


def replay(impl: Implementation, fmt: Format, case: tuple, model: Model = IEEE) -> tuple[str, bool]:
    """(report text, passed?) for one case."""
    lines = [f"{impl.name} in {fmt.name}, model {model.name}"]
    lines += [f"  {n:>2} = {float_hex(v):<24} = {v!r}" for n, v in zip(INPUTS, case)]
    try:
        out = impl(fmt.name, case)
    except NotImplementedError as exc:
        return "\n".join(lines + [f"  unsupported format: {exc}"]), True
    except ImplementationError as exc:
        return "\n".join(lines + [f"  FAIL: {exc}"]), False
    exact = exact_step(*case).as_fractions()
    bounds = case_bounds(fmt, dict(zip(INPUTS, case)), model)
    lines.append(f"  {'quantity':<8} {'observed':<26} {'exact':<32} {'error ulp':>10} "
                 f"{'bound ulp':>10}  verdict")
    ok = True
    for q in CHECKED:
        obs, ex, b = out[q], exact[q], bounds[q]
        ulp = fmt.ulp(ex)
        err = abs(Fraction(obs) - ex) / ulp if math.isfinite(obs) else math.inf
        if isinstance(b, OutOfDomain):
            verdict, bstr = f"not checked ({b.reason})", "-"
        else:
            bstr = f"{as_float(Fraction(b) / ulp):.3g}"
            good = math.isfinite(obs) and abs(Fraction(obs) - ex) <= Fraction(b)
            verdict = "ok" if good else "FAIL"
            ok &= good
        lines.append(f"  {q:<8} {float_hex(obs):<26} {exact_decimal(ex, 28):<32} "
                     f"{as_float(err):>10.3g} {bstr:>10}  {verdict}")
    for name, prop in PROPERTIES.items():
        if prop is within_bounds:
            continue
        try:
            prop(impl, fmt, ("replay", case))
            lines.append(f"  property {name}: ok")
        except PropertyViolation as exc:
            ok = False
            lines.append(f"  property {name}: FAIL: {exc.finding.detail}")
    return "\n".join(lines), ok
