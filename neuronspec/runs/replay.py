"""``neuronspec replay``: one case, replayed alone -- every quantity of an implementation
against its exact value and bound (the bounded level of ``reference.judge``), against the
values the model's evaluations give (the exact level, with their hull), then every other
property of the suite on that case."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from reference.bounds import IEEE, Model, OutOfDomain, case_bounds
from reference.exact import exact_step
from reference.formats import Format, as_float, exact_decimal, float_hex
from reference.judge import judge_case
from reference.legal import admitted_for, legal_values
from reference.step import INPUTS, REQUIRED

from ..errors import ImplementationError
from ..findings import PropertyViolation
from ..properties import PROPERTIES, declinable, supported

__all__ = ["replay"]


def replay(impl: Any, fmt: Format, case: tuple, model: Model = IEEE,
           level: str = "exact") -> tuple[str, int]:
    """(report text, exit status) for one case: 0 every quantity and property holds at
    ``level``, 1 one does not (or the step failed on the case), 2 the format is not supported
    (not checked).  Both levels are shown, with the legal values and their hull."""
    lines = [f"{impl.name} in {fmt.name}, model {model.name}"]
    lines += [f"  {n:>2} = {float_hex(v):<24} = {v!r}" for n, v in zip(INPUTS, case)]
    try:
        out = impl(fmt.name, case)
    except NotImplementedError as exc:
        ok, _ = supported(impl, fmt.name)
        why = declinable(fmt, case)
        if ok and why:  # the domain lets an implementation decline this case
            return "\n".join(lines + [f"  NOT CHECKED: declined ({why}: {exc})"]), 2
        if ok:  # it accepts the format, not this case: a failure of the case
            return "\n".join(lines + [f"  FAIL: raised NotImplementedError on a case of "
                                      f"{fmt.name}, a format it supports ({exc})"]), 1
        return "\n".join(lines + [f"  NOT CHECKED: unsupported format: {exc}"]), 2
    except ImplementationError as exc:
        return "\n".join(lines + [f"  FAIL: {exc}"]), 1
    exact = exact_step(*case).as_fractions()
    bounds = case_bounds(fmt, case, model)
    legal = legal_values(fmt, case, model)
    judgements = judge_case(fmt, case, out, model, bounds=bounds, exact=exact,
                            quantities=REQUIRED, legal=legal)
    lines.append(f"  {'quantity':<8} {'observed':<26} {'exact':<32} {'error ulp':>10} "
                 f"{'bound ulp':>10}  verdict")
    ok = True
    for q, j in judgements.items():
        obs, ex, b = j.observed, exact[q], bounds[q]
        ulp = fmt.ulp(ex)
        err = abs(Fraction(obs) - ex) / ulp if math.isfinite(obs) else math.inf
        if isinstance(b, OutOfDomain):
            verdict, bstr = f"not checked ({b.reason})", "-"
        else:
            bstr = f"{as_float(Fraction(b) / ulp):.3g}"
            verdict = "ok" if j.ok else f"FAIL ({j.why})"
            ok &= j.ok
        lines.append(f"  {q:<8} {float_hex(obs):<26} {exact_decimal(ex, 28):<32} "
                     f"{as_float(err):>10.3g} {bstr:>10}  {verdict}")
    lines.append(f"  exact level (model {model.name}: {len(admitted_for(fmt, model, case))} "
                 "admitted evaluations):")
    explained = True
    for q in REQUIRED:
        e = legal.explain(q, out[q])
        hull = legal.hull(q)
        span = f"hull [{float_hex(hull[0])}, {float_hex(hull[1])}]" if hull else "no finite value"
        if e.explained:
            lines.append(f"  {q:<8} explained by {', '.join(e.variants[:3])}"
                         + (f" (+{len(e.variants) - 3})" if len(e.variants) > 3 else "")
                         + f"; {span}")
            continue
        explained = False
        near = ("no finite legal value" if e.nearest is None else
                f"nearest legal {float_hex(e.nearest)} ({', '.join(e.nearest_variants[:2])}), "
                f"{e.ulps:.3g} ulps away")
        lines.append(f"  {q:<8} UNEXPLAINED: {near}; {span}")
    for name, prop in PROPERTIES.items():
        if name == "within-bounds":
            continue
        try:
            prop(impl, fmt, ("replay", case), model)
            lines.append(f"  property {name}: ok")
        except PropertyViolation as exc:
            ok = False
            lines.append(f"  property {name}: FAIL: {exc.finding.detail}")
    lines.append(f"  bounded level: {'ok' if ok else 'FAIL'}; exact level: "
                 f"{'ok' if ok and explained else 'FAIL'}")
    return "\n".join(lines), 0 if ok and (explained or level == "bounded") else 1
