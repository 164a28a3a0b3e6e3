"""The properties every implementation of the step must have, as plain functions of one case.

The pytest suite drives them with hypothesis (``tests/test_properties.py``); the mutant test and
the conformance checker call the same functions.  Each raises :class:`PropertyViolation`, whose
message is a complete, standalone report: format, inputs in hex and decimal, exact and observed
values, error in ulps and as a fraction of the bound, the evaluation variants that would
produce the observed value, and a command that replays the case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Optional

from .bounds import IEEE, Model, OutOfDomain, case_bounds, get_model
from .exact import exact_step
from .formats import Format, as_float, float_hex, get_format
from .impls import Implementation, ImplementationError
from .rounded import ALL_VARIANTS, evaluate_variants
from .seed import exact_decimal

__all__ = ["Finding", "PropertyViolation", "CaseCheck", "hunt", "within_bounds", "stateless", "gradient_identity",
           "sign_symmetry", "descent", "PROPERTIES", "replay_command", "CHECKED"]

CHECKED = ("y", "loss", "dL_dw", "dL_db", "w_new", "b_new")
INPUTS = ("w", "b", "x", "t", "lr")


def replay_command(impl: Implementation, fmt: Format, case: tuple, model: Model = IEEE) -> str:
    spec = impl.spec or impl.name
    cmd = f"neuronspec replay {spec} --dtype {fmt.name} --case " + ",".join(
        float_hex(v) for v in case)
    if model is not IEEE:
        cmd += f" --model {model.name}"
    return cmd


@dataclass
class Finding:
    """One property failure on one case, with everything needed to understand and replay it."""

    prop: str
    impl: Implementation
    fmt: Format
    regime: str
    case: tuple
    detail: str
    quantity: Optional[str] = None
    exact: Optional[Fraction] = None
    observed: Optional[float] = None
    bound: "Fraction | float | None" = None
    model: Model = IEEE
    variants: list = field(default_factory=list)
    outputs: Optional[dict] = None  # the implementation's results on the case, when it gave any

    def message(self) -> str:
        fmt = self.fmt
        lines = [f"{self.prop} failed: {self.impl.name} in {fmt.name}, {self.regime} case: "
                 f"{self.detail}"]
        lines += [f"  {n:>2} = {float_hex(v):<24} = {v!r}" for n, v in zip(INPUTS, self.case)]
        if self.quantity is not None and self.exact is not None:
            lines.append(f"  {self.quantity}: exact    = {exact_decimal(self.exact, 30)}")
            obs = self.observed
            lines.append(f"  {self.quantity}: observed = {float_hex(obs)} = {obs!r}")
            if obs is not None and math.isfinite(obs):
                err = abs(Fraction(obs) - self.exact)
                ulps = as_float(err / fmt.ulp(self.exact))
                lines.append(f"  error = {as_float(err):.6g} = {ulps:.3g} ulp of the exact value")
                if self.bound is not None:
                    b = Fraction(self.bound)
                    ratio = "inf" if b == 0 else f"{as_float(err / b):.3g}"
                    lines.append(f"  bound ({self.model.name}) = {as_float(b):.6g} = "
                                 f"{as_float(b / fmt.ulp(self.exact)):.3g} ulp; error/bound = {ratio}")
            if self.variants:
                lines.append("  this value is what these evaluations give: "
                             + ", ".join(self.variants[:6]))
            else:
                lines.append("  no evaluation variant of the model gives this value")
        lines.append(f"  replay: {replay_command(self.impl, fmt, self.case, self.model)}")
        return "\n".join(lines)


class PropertyViolation(AssertionError):
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message())
        self.finding = finding


def _fail(**kw) -> None:
    raise PropertyViolation(Finding(**kw))


def _variants_giving(fmt: Format, case: tuple, quantity: str, value: float) -> list[str]:
    """Names of the evaluation variants whose ``quantity`` is ``value`` bit for bit."""
    try:
        results = evaluate_variants(fmt, *case, ALL_VARIANTS.values())
    except ValueError:
        return []
    same = []
    for name, out in results.items():
        v = out[quantity]
        if (v == value and math.copysign(1, v) == math.copysign(1, value)) or (v != v and value != value):
            same.append(name)
    return same


class _Unchecked(Exception):
    """The implementation raised an overflow error on a case where some quantity is outside
    the bounded domain: allowed (spec/tolerances.md 2.5), so the case checks nothing."""


def _run(impl: Implementation, fmt: Format, case: tuple, prop: str, regime: str,
         model: Model) -> dict[str, float]:
    try:
        return impl(fmt.name, case)
    except ImplementationError as exc:
        if isinstance(exc.__cause__, ArithmeticError) or getattr(exc, "reported", False):
            bounds = case_bounds(fmt, dict(zip(INPUTS, case)), model)
            if any(isinstance(bounds[q], OutOfDomain) for q in CHECKED):
                raise _Unchecked() from exc
        _fail(prop=prop, impl=impl, fmt=fmt, regime=regime, case=case, detail=str(exc),
              model=model)
        raise AssertionError("unreachable")


def _allow_overflow_outside_domain(prop: Callable) -> Callable:
    import functools

    @functools.wraps(prop)
    def checked(*args, **kwargs):
        try:
            return prop(*args, **kwargs)
        except _Unchecked:
            return None

    return checked


def _exceeds(observed: float, exact: Fraction, bound) -> "tuple[bool, Fraction]":
    if not math.isfinite(observed):
        return True, Fraction(-1)
    err = abs(Fraction(observed) - exact)
    return err > Fraction(bound), err


@dataclass
class CaseCheck:
    """What within_bounds saw on one case (for reports and fingerprints)."""

    outputs: dict
    exact: dict
    bounds: dict
    ratios: dict  # quantity -> error/bound, for the quantities in the bounded domain


def within_bounds(impl: Implementation, fmt: "Format | str", labelled: tuple,
                  model: "Model | str" = IEEE,
                  target: Optional[Callable[..., None]] = None) -> "CaseCheck | None":
    """Every quantity in the bounded domain is a finite value of the format within its bound.

    Returns what it saw (None when the implementation raised an overflow error on a case
    partly outside the domain); ``target`` (e.g. hypothesis.target) is called with each
    error/bound ratio so a search can climb toward the worst case.
    """
    fmt, model = get_format(fmt), get_model(model)
    regime, case = labelled
    inputs = dict(zip(INPUTS, case))
    bounds = case_bounds(fmt, inputs, model)
    out = _run(impl, fmt, case, "within-bounds", regime, model)
    exact = exact_step(*case).as_fractions()
    ratios = {}
    for q in CHECKED + (("dL_dy",) if "dL_dy" in out else ()):
        if isinstance(bounds[q], OutOfDomain):
            continue
        obs = out[q]
        bad, err = _exceeds(obs, exact[q], bounds[q])
        not_in_format = math.isfinite(obs) and not fmt.contains(obs)
        if bad or not_in_format:
            detail = (f"{q} = {obs!r} is not a {fmt.name} value (computed in a wider format?)"
                      if not bad else f"{q} is outside its bound")
            _fail(prop="within-bounds", impl=impl, fmt=fmt, regime=regime, case=case,
                  detail=detail, quantity=q, exact=exact[q], observed=obs, bound=bounds[q],
                  model=model, variants=_variants_giving(fmt, case, q, obs), outputs=out)
        b = Fraction(bounds[q])
        ratios[q] = as_float(err / b) if b else 0.0
        if target is not None:
            target(ratios[q], label=f"{fmt.name} {q} error/bound")
    return CaseCheck(out, exact, bounds, ratios)


def stateless(impl: Implementation, fmt: "Format | str", labelled: tuple) -> None:
    """A second call on the same case returns the same bits (gradients zeroed between calls)."""
    fmt = get_format(fmt)
    regime, case = labelled
    first = _run(impl, fmt, case, "stateless", regime, IEEE)
    second = _run(impl, fmt, case, "stateless", regime, IEEE)
    for q in CHECKED:
        a, b = first[q], second[q]
        if not (a == b or (a != a and b != b)):
            exact = exact_step(*case).as_fractions()[q]
            _fail(prop="stateless", impl=impl, fmt=fmt, regime=regime, case=case,
                  detail=f"a second call returned {q} = {b!r} after {a!r} (state kept between "
                  "calls, e.g. gradients accumulated without zeroing)",
                  quantity=q, exact=exact, observed=b)


def gradient_identity(impl: Implementation, fmt: "Format | str", labelled: tuple) -> None:
    """dL_dw = x * dL_db holds exactly for exact values, so the computed ones differ by at most
    the two bounds: |dL_dw^ - x dL_db^| <= E(dL_dw) + |x| E(dL_db)."""
    fmt = get_format(fmt)
    regime, case = labelled
    bounds = case_bounds(fmt, dict(zip(INPUTS, case)))
    if isinstance(bounds["dL_dw"], OutOfDomain) or isinstance(bounds["dL_db"], OutOfDomain):
        return
    out = _run(impl, fmt, case, "gradient-identity", regime, IEEE)
    gw, gb, x = out["dL_dw"], out["dL_db"], case[2]
    if not (math.isfinite(gw) and math.isfinite(gb)):
        return  # within_bounds reports non-finite values
    gap = abs(Fraction(gw) - Fraction(x) * Fraction(gb))
    allowed = Fraction(bounds["dL_dw"]) + abs(Fraction(x)) * Fraction(bounds["dL_db"])
    if gap > allowed:
        _fail(prop="gradient-identity", impl=impl, fmt=fmt, regime=regime, case=case,
              detail=f"|dL_dw - x*dL_db| = {float(gap):.6g} exceeds the allowed "
              f"{float(allowed):.6g} (dL_dw = {gw!r}, dL_db = {gb!r})")


def sign_symmetry(impl: Implementation, fmt: "Format | str", labelled: tuple) -> None:
    """Negating w, b and t negates y, dL_dy, the gradients and the updates and keeps the loss:
    round-to-nearest is symmetric, so this holds exactly for every IEEE evaluation."""
    fmt = get_format(fmt)
    regime, case = labelled
    w, b, x, t, lr = case
    bounds = case_bounds(fmt, dict(zip(INPUTS, case)))
    a = _run(impl, fmt, case, "sign-symmetry", regime, IEEE)
    mirrored = (-w, -b, x, -t, lr)
    m = _run(impl, fmt, mirrored, "sign-symmetry", regime, IEEE)
    for q in CHECKED:
        if isinstance(bounds[q], OutOfDomain):
            continue
        want = a[q] if q == "loss" else -a[q]
        if not (m[q] == want):
            _fail(prop="sign-symmetry", impl=impl, fmt=fmt, regime=regime, case=case,
                  detail=f"with (w, b, t) negated, {q} = {m[q]!r}, expected "
                  f"{'the same' if q == 'loss' else 'the negation'}: {want!r}")


def descent(impl: Implementation, fmt: "Format | str", labelled: tuple) -> None:
    """When 0 < lr*(x^2 + 1) < 2 the step does not increase the loss, allowing for the bounds:
    loss(w_new, b_new) <= loss(w, b) + E(loss) + E(loss after) + the parameter-error term."""
    fmt = get_format(fmt)
    regime, case = labelled
    w, b, x, t, lr = case
    k = Fraction(lr) * (Fraction(x) ** 2 + 1)
    if not 0 < k < 2:
        return
    bounds = case_bounds(fmt, dict(zip(INPUTS, case)))
    if any(isinstance(bounds[q], OutOfDomain) for q in ("loss", "w_new", "b_new")):
        return
    before = _run(impl, fmt, case, "descent", regime, IEEE)
    wn, bn = before["w_new"], before["b_new"]
    if not (math.isfinite(wn) and math.isfinite(bn)) or not (fmt.contains(wn) and fmt.contains(bn)):
        return  # within_bounds reports these
    after_case = (wn, bn, x, t, lr)
    after_bounds = case_bounds(fmt, dict(zip(INPUTS, after_case)))
    if isinstance(after_bounds["loss"], OutOfDomain):
        return
    after = _run(impl, fmt, after_case, "descent", regime, IEEE)
    r = exact_step(*case).as_fractions()["dL_dy"]
    delta = abs(Fraction(x)) * Fraction(bounds["w_new"]) + Fraction(bounds["b_new"])
    slack = max(Fraction(0), ((abs(r) * abs(1 - k) + delta) ** 2 - r * r) / 2)
    allowed = Fraction(before["loss"]) + Fraction(bounds["loss"]) + \
        Fraction(after_bounds["loss"]) + slack
    if not math.isfinite(after["loss"]) or Fraction(after["loss"]) > allowed:
        _fail(prop="descent", impl=impl, fmt=fmt, regime=regime, case=case,
              detail=f"lr*(x^2+1) = {float(k):.6g} is in (0, 2) but the loss went from "
              f"{before['loss']!r} to {after['loss']!r} at (w_new, b_new) (allowed up to "
              f"{float(allowed):.6g})")


within_bounds = _allow_overflow_outside_domain(within_bounds)
stateless = _allow_overflow_outside_domain(stateless)
gradient_identity = _allow_overflow_outside_domain(gradient_identity)
sign_symmetry = _allow_overflow_outside_domain(sign_symmetry)
descent = _allow_overflow_outside_domain(descent)

PROPERTIES: dict[str, Callable] = {
    "within-bounds": within_bounds,
    "stateless": stateless,
    "gradient-identity": gradient_identity,
    "sign-symmetry": sign_symmetry,
    "descent": descent,
}


def hunt(impl: Implementation, formats: "list[str] | None" = None, max_examples: int = 200,
         seed: int = 0, properties: "list[str] | None" = None) -> "Finding | None":
    """Search for a case where ``impl`` violates a property (hypothesis, derandomized by
    ``seed``); the first finding, or None if every property held on every case tried."""
    from hypothesis import HealthCheck, Phase, given, seed as hseed, settings
    from hypothesis import assume as h_assume

    from .formats import FORMATS
    from .strategies import cases

    supported = []
    for fmt in formats or ["float32", "float64", "float16", "bfloat16"]:
        try:
            impl(fmt, (1.0, 0.0, 1.0, 0.0, 0.0))
        except NotImplementedError:
            continue
        except ImplementationError:
            pass  # the properties will report it with the case
        supported.append(fmt)
    # the cheapest, most telling property first, in every format, then the others
    for name in properties or list(PROPERTIES):
        prop = PROPERTIES[name]
        for fmt in supported:

            @hseed(seed)
            @settings(max_examples=max_examples, deadline=None, database=None,
                      phases=[Phase.explicit, Phase.generate, Phase.target],
                      suppress_health_check=list(HealthCheck))
            @given(labelled=cases(fmt))
            def run(labelled):
                b = case_bounds(FORMATS[fmt], dict(zip(INPUTS, labelled[1])))
                h_assume(any(not isinstance(v, OutOfDomain) for v in b.values()))
                prop(impl, fmt, labelled)

            try:
                run()
            except PropertyViolation as exc:
                return exc.finding
    return None
