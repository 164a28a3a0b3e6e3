"""The properties every implementation of the step must have, as plain functions of one case.

The pytest suite (``neuronspec.suite``, run by the plugin) drives them with hypothesis; the
mutant test and ``neuronspec check`` call the same functions.  Each raises
:class:`~neuronspec.findings.PropertyViolation`, whose message is a complete, standalone report
(``neuronspec.findings``).  Whether a value is within its bound is decided by the one judge,
``reference.judge``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Optional

from reference.bounds import IEEE, Model, OutOfDomain, case_bounds, get_model
from reference.dyadic import exact_fractions
from reference.formats import Format, get_format
from reference.formats import float_hex
from reference.judge import (NOT_AN_OVERFLOW, NOT_FINITE, NOT_IN_FORMAT, WRONG_ZERO, Judgement,
                             judge_case)
from reference.legal import Legal, admitted_for, legal_values, value_key
from reference.rounded import ALL_VARIANTS, evaluate_variants
from reference.step import REQUIRED

from .errors import ImplementationError
from .findings import Finding, PropertyViolation

@functools.lru_cache(maxsize=4096)
def _bounds(fmt: Format, case: tuple, model: Model) -> dict:
    """``case_bounds``, remembered: the properties of one case ask for the same bounds (a
    zero's sign changes neither a bound nor an exact value, so -0 and +0 may share)."""
    return case_bounds(fmt, case, model)


@functools.lru_cache(maxsize=4096)
def _exact(case: tuple) -> dict:
    """``exact_step(*case).as_fractions()``, in integer arithmetic (``reference.dyadic``)."""
    return exact_fractions(*case)


def forget() -> None:
    """Forget the remembered bounds and exact values (a benchmark's every case is then new)."""
    _bounds.cache_clear()
    _exact.cache_clear()


def _key(case) -> tuple:
    return tuple(float(v) for v in case)


__all__ = ["CaseCheck", "Declined", "declinable", "forget", "hunt", "within_bounds", "exact_level",
           "ALL_PROPERTIES",
           "unexplained_finding", "stateless",
           "gradient_identity",
           "sign_symmetry", "descent", "PROPERTIES", "calls_of", "supported", "in_domain",
           "PROBE"]


def _fail(**kw) -> None:
    raise PropertyViolation(Finding(**kw))


def _variants_giving(fmt: Format, case: tuple, quantity: str, value: float,
                     model: Model) -> tuple[list[str], int]:
    """The evaluation variants whose ``quantity`` is ``value`` bit for bit: those the model
    admits first, then the others, simplest first; and how many the model admits."""
    try:
        results = evaluate_variants(fmt, *case, ALL_VARIANTS.values())
    except ValueError:
        return [], 0
    admitted = {v.name for v in admitted_for(fmt, model, case)}
    same = [name for name, out in results.items()
            if (out[quantity] == value and math.copysign(1, out[quantity]) ==
                math.copysign(1, value)) or (out[quantity] != out[quantity] and value != value)]
    ours = [n for n in same if n in admitted]
    others = sorted((n for n in same if n not in admitted), key=lambda n: (n.count("+"), n))
    return ours + others, len(ours)


class _Unchecked(Exception):
    """The implementation raised an overflow error on a case where some quantity is outside
    the bounded domain: allowed (spec/tolerances.md 2.5), so the case checks nothing."""


@dataclass(frozen=True)
class Declined:
    """A case the implementation declined (NotImplementedError) where it may: a negative or a
    subnormal learning rate.  A reported skip, never a pass."""

    reason: str


class _Declined(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def declinable(fmt: "Format | str", case: tuple) -> str:
    """Why an implementation may decline ``case`` ('' where it may not): the domain admits a
    negative learning rate (-0 included) and a subnormal one, which some optimisers refuse."""
    lr = case[4]
    if math.copysign(1.0, lr) < 0:
        return "a negative learning rate"
    if lr != 0 and abs(lr) < get_format(fmt).smallest_normal:
        return "a subnormal learning rate"
    return ""


def _run(impl: Any, fmt: Format, case: tuple, prop: str, regime: str,
         model: Model) -> dict[str, float]:
    try:
        return impl(fmt.name, case)
    except NotImplementedError as exc:  # the format was accepted: this case is a failure
        reason = declinable(fmt, case)
        if reason:  # ... unless the domain lets an implementation decline it
            raise _Declined(f"{reason} ({exc or 'NotImplementedError'})") from None
        _fail(prop=prop, impl=impl, fmt=fmt, regime=regime, case=case, model=model,
              detail=f"raised NotImplementedError on a case of {fmt.name}, a format it "
                     f"supports ({exc or 'no message'})")
        raise AssertionError("unreachable")
    except ImplementationError as exc:
        if exc.overflow:
            bounds = _bounds(fmt, _key(case), model)
            if any(isinstance(bounds[q], OutOfDomain) for q in REQUIRED):
                raise _Unchecked() from exc
        _fail(prop=prop, impl=impl, fmt=fmt, regime=regime, case=case, detail=str(exc),
              model=model)
        raise AssertionError("unreachable")


def _allow_overflow_outside_domain(prop: Callable) -> Callable:
    @functools.wraps(prop)
    def checked(*args, **kwargs):
        try:
            return prop(*args, **kwargs)
        except _Unchecked:
            return None
        except _Declined as exc:
            return Declined(exc.reason)

    return checked


@dataclass
class CaseCheck:
    """What within_bounds saw on one case (for reports and fingerprints).  The exact level's
    legal values and explanations are computed when first asked for: the bounded level needs
    them only to judge a zero or an overflow."""

    outputs: dict
    exact: dict
    bounds: dict
    judgements: dict  # quantity -> reference.judge.Judgement (the bounded level)
    fmt: Format
    case: tuple
    model: Model

    @functools.cached_property
    def legal(self) -> Legal:
        """The case's legal values."""
        return legal_values(self.fmt, self.case, self.model)

    @functools.cached_property
    def explanations(self) -> dict:
        """Quantity -> reference.legal.Explanation (the exact level)."""
        return {q: self.legal.explain(q, j.observed) for q, j in self.judgements.items()}

    @property
    def ratios(self) -> dict[str, float]:
        """error/bound of the quantities in the bounded domain."""
        return {q: j.ratio for q, j in self.judgements.items() if not math.isnan(j.ratio)}


def _violation_detail(fmt: Format, j: Judgement) -> str:
    if j.why == NOT_FINITE:
        return f"{j.quantity} = {j.observed!r} is not finite"
    if j.why == NOT_IN_FORMAT:
        return (f"{j.quantity} = {j.observed!r} is not a {fmt.name} value (computed in a wider "
                "format?)")
    if j.why == WRONG_ZERO:
        return (f"{j.quantity} = {j.observed!r}: a zero of the wrong sign (IEEE 754 fixes it "
                "here; " + ("the loss is never -0)" if j.quantity == "loss" else
                            "every admitted evaluation gives the other)"))
    if j.why == NOT_AN_OVERFLOW:
        return (f"{j.quantity} = {j.observed!r}: an admitted evaluation may overflow here, but "
                "none gives this value")
    return f"{j.quantity} is outside its bound"


def within_bounds(impl: Any, fmt: "Format | str", labelled: tuple,
                  model: "Model | str" = IEEE,
                  target: Optional[Callable[..., None]] = None) -> "CaseCheck | None":
    """Every quantity in the bounded domain is a finite value of the format within its bound.

    Returns what it saw (None when the implementation raised an overflow error on a case
    partly outside the domain); ``target`` (e.g. hypothesis.target) is called with each
    error/bound ratio so a search can climb toward the worst case.
    """
    fmt, model = get_format(fmt), get_model(model)
    regime, case = labelled
    bounds = _bounds(fmt, _key(case), model)
    out = _run(impl, fmt, case, "within-bounds", regime, model)
    exact = _exact(_key(case))
    check = CaseCheck(out, exact, bounds, {}, fmt, case, model)
    check.judgements = judge_case(fmt, case, out, model, bounds=bounds, exact=exact,
                                  legal=lambda: check.legal)
    for q, j in check.judgements.items():
        if j.violation:
            _fail(prop="within-bounds", impl=impl, fmt=fmt, regime=regime, case=case,
                  detail=_violation_detail(fmt, j), quantity=q, exact=exact[q],
                  observed=j.observed, bound=_number(j.bound), model=model,
                  variants=functools.partial(_variants_giving, fmt, case, q, j.observed,
                                             model),
                  nearest=functools.partial(_nearest, check, q, j.observed), outputs=out)
        if target is not None and j.ok and not math.isnan(j.ratio):
            target(j.ratio, label=f"{fmt.name} {q} error/bound")
    return check


def _nearest(check: CaseCheck, q: str, observed: float):
    return check.legal.explain(q, observed)


def _number(bound) -> "Fraction | float | None":
    return None if isinstance(bound, OutOfDomain) else bound


def unexplained_finding(impl: Any, fmt: Format, labelled: tuple, check: "CaseCheck",
                        q: str, model: Model) -> Finding:
    """The exact level's finding for a value no admitted evaluation gives (the value is within
    its bound: the bounded level passed)."""
    regime, case = labelled
    e = check.explanations[q]
    j = check.judgements[q]
    return Finding(prop="exact-level", impl=impl, fmt=fmt, regime=regime, case=case,
                   detail=f"{q} = {float_hex(j.observed)} is within its bound, but no "
                          f"evaluation the model ({model.name}) admits gives it",
                   quantity=q, exact=j.exact, observed=j.observed, bound=_number(j.bound),
                   model=model,
                   variants=functools.partial(_variants_giving, fmt, case, q, j.observed, model),
                   nearest=e, outputs=check.outputs)


def stateless(impl: Any, fmt: "Format | str", labelled: tuple,
              model: "Model | str" = IEEE) -> None:
    """A second call on the same case returns the same bits (gradients zeroed between calls),
    and a third one with the same w and b but another x is right for its own case (no state
    kept between calls or keyed by the parameters)."""
    fmt, model = get_format(fmt), get_model(model)
    regime, case = labelled
    first = _run(impl, fmt, case, "stateless", regime, model)
    second = _run(impl, fmt, case, "stateless", regime, model)
    for q in REQUIRED:
        a, b = first[q], second[q]
        if value_key(a) != value_key(b):
            exact = _exact(_key(case))[q]
            _fail(prop="stateless", impl=impl, fmt=fmt, regime=regime, case=case,
                  detail=f"a second call returned {q} = {b!r} after {a!r} (state kept between "
                  "calls, e.g. gradients accumulated without zeroing)",
                  quantity=q, exact=exact, observed=b, model=model)
    other = other_x(case)
    third = _run(impl, fmt, other, "stateless", regime, model)
    exact = _exact(_key(other))
    for q, j in judge_case(fmt, other, third, model, exact=exact,
                           quantities=REQUIRED).items():
        if j.violation:
            _fail(prop="stateless", impl=impl, fmt=fmt, regime=regime, case=other,
                  detail=f"called with the same w and b and another x after the case (w, b, x, "
                  f"t, lr) = ({', '.join(float_hex(v) for v in case)}), it returned {q} = "
                  f"{j.observed!r}, {j.why} (state kept between calls, or keyed by the "
                  "parameters)", quantity=q, exact=exact[q], observed=j.observed,
                  bound=_number(j.bound), model=model)


def other_x(case: tuple) -> tuple:
    """The case with the same w, b, t and lr and another x (-x, or 1 for a zero x)."""
    w, b, x, t, lr = case
    return (w, b, -x if x != 0 else 1.0, t, lr)


def gradient_identity(impl: Any, fmt: "Format | str", labelled: tuple,
                      model: "Model | str" = IEEE) -> None:
    """dL_dw = x * dL_db holds exactly for exact values, so the computed ones differ by at most
    the two bounds of the declared model: |dL_dw^ - x dL_db^| <= E(dL_dw) + |x| E(dL_db)."""
    fmt, model = get_format(fmt), get_model(model)
    regime, case = labelled
    bounds = _bounds(fmt, _key(case), model)
    if isinstance(bounds["dL_dw"], OutOfDomain) or isinstance(bounds["dL_db"], OutOfDomain):
        return
    out = _run(impl, fmt, case, "gradient-identity", regime, model)
    gw, gb, x = out["dL_dw"], out["dL_db"], case[2]
    if not (math.isfinite(gw) and math.isfinite(gb)):
        return  # within_bounds reports non-finite values
    gap = abs(Fraction(gw) - Fraction(x) * Fraction(gb))
    allowed = Fraction(bounds["dL_dw"]) + abs(Fraction(x)) * Fraction(bounds["dL_db"])
    if gap > allowed:
        _fail(prop="gradient-identity", impl=impl, fmt=fmt, regime=regime, case=case,
              detail=f"|dL_dw - x*dL_db| = {float(gap):.6g} exceeds the allowed "
              f"{float(allowed):.6g} (dL_dw = {gw!r}, dL_db = {gb!r})", model=model)


def sign_symmetry(impl: Any, fmt: "Format | str", labelled: tuple,
                  model: "Model | str" = IEEE) -> None:
    """Negating w, b and t negates y, dL_dy, the gradients and the updates and keeps the loss:
    round-to-nearest (and flushing) is symmetric, so this holds exactly for every evaluation
    of every model."""
    fmt, model = get_format(fmt), get_model(model)
    regime, case = labelled
    w, b, x, t, lr = case
    bounds = _bounds(fmt, _key(case), model)
    a = _run(impl, fmt, case, "sign-symmetry", regime, model)
    mirrored = (-w, -b, x, -t, lr)
    m = _run(impl, fmt, mirrored, "sign-symmetry", regime, model)
    for q in REQUIRED:
        if isinstance(bounds[q], OutOfDomain):
            continue
        want = a[q] if q == "loss" else -a[q]
        if not (m[q] == want):
            _fail(prop="sign-symmetry", impl=impl, fmt=fmt, regime=regime, case=case,
                  detail=f"with (w, b, t) negated, {q} = {m[q]!r}, expected "
                  f"{'the same' if q == 'loss' else 'the negation'}: {want!r}", model=model)


def descent(impl: Any, fmt: "Format | str", labelled: tuple,
            model: "Model | str" = IEEE) -> None:
    """When 0 < lr*(x^2 + 1) < 2 the step does not increase the loss, allowing for the bounds
    of the declared model: loss(w_new, b_new) <= loss(w, b) + E(loss) + E(loss after) + the
    parameter-error term."""
    fmt, model = get_format(fmt), get_model(model)
    regime, case = labelled
    w, b, x, t, lr = case
    k = Fraction(lr) * (Fraction(x) ** 2 + 1)
    if not 0 < k < 2:
        return
    bounds = _bounds(fmt, _key(case), model)
    if any(isinstance(bounds[q], OutOfDomain) for q in ("loss", "w_new", "b_new")):
        return
    before = _run(impl, fmt, case, "descent", regime, model)
    wn, bn = before["w_new"], before["b_new"]
    if not (math.isfinite(wn) and math.isfinite(bn)) or not (fmt.contains(wn) and fmt.contains(bn)):
        return  # within_bounds reports these
    after_case = (wn, bn, x, t, lr)
    after_bounds = _bounds(fmt, _key(after_case), model)
    if isinstance(after_bounds["loss"], OutOfDomain):
        return
    after = _run(impl, fmt, after_case, "descent", regime, model)
    r = _exact(_key(case))["dL_dy"]
    delta = abs(Fraction(x)) * Fraction(bounds["w_new"]) + Fraction(bounds["b_new"])
    slack = max(Fraction(0), ((abs(r) * abs(1 - k) + delta) ** 2 - r * r) / 2)
    allowed = Fraction(before["loss"]) + Fraction(bounds["loss"]) + \
        Fraction(after_bounds["loss"]) + slack
    if not math.isfinite(after["loss"]) or Fraction(after["loss"]) > allowed:
        _fail(prop="descent", impl=impl, fmt=fmt, regime=regime, case=case,
              detail=f"lr*(x^2+1) = {float(k):.6g} is in (0, 2) but the loss went from "
              f"{before['loss']!r} to {after['loss']!r} at (w_new, b_new) (allowed up to "
              f"{float(allowed):.6g})", model=model)


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


def exact_level(impl: Any, fmt: "Format | str", labelled: tuple,
                model: "Model | str" = IEEE,
                target: Optional[Callable[..., None]] = None) -> "CaseCheck | None":
    """Every value is, bit for bit, what an evaluation the model admits gives: the exact level
    of the verdict (within-bounds is the bounded one, and runs first)."""
    fmt, model = get_format(fmt), get_model(model)
    finding = None
    try:
        check = within_bounds(impl, fmt, labelled, model, target=target)
    except PropertyViolation as exc:
        finding, check = exc.finding, None
    if isinstance(check, CaseCheck):
        finding = next((unexplained_finding(impl, fmt, labelled, check, q, model)
                        for q, e in check.explanations.items() if not e.explained), None)
    if finding is not None:
        # one raise site for both kinds: hypothesis shrinks one failure, not one per line
        raise PropertyViolation(finding)
    return check


#: Every property, the exact level included (``hunt``, the pytest suite); ``check`` runs the
#: exact level through within-bounds' explanations instead.
ALL_PROPERTIES: dict[str, Callable] = {**PROPERTIES, "exact-level": exact_level}


def calls_of(case: tuple) -> list[tuple]:
    """The cases the properties, run in ``PROPERTIES`` order, call the implementation on,
    in that order, as far as they are known before the first answer (descent's second case
    is its first answer's update): what a process implementation can be sent at once."""
    w, b, x, t, lr = case
    return [case,  # within-bounds
            case, case, other_x(case),  # stateless
            case,  # gradient-identity
            case, (-w, -b, x, -t, lr),  # sign-symmetry
            case]  # descent (before)


#: The case an implementation is first called on, to learn whether it supports a format.
PROBE = (1.0, 0.0, 1.0, 0.0, 0.0)


def supported(impl: Any, fmt: str) -> "tuple[bool, str]":
    """(whether ``impl`` supports ``fmt``, why not): it raises NotImplementedError if not; any
    other failure is reported with a case by the properties."""
    try:
        impl(fmt, PROBE)
    except NotImplementedError as exc:
        return False, str(exc) or "NotImplementedError"
    except ImplementationError:
        pass
    return True, ""


def in_domain(fmt: "Format | str", case: tuple, model: "Model | str" = IEEE) -> bool:
    """Whether any quantity of the case is in the bounded domain (else it checks nothing)."""
    return any(not isinstance(v, OutOfDomain) for v in _bounds(fmt, _key(case), model).values())


def hunt(impl: Any, formats: "list[str] | None" = None, max_examples: int = 200,
         seed: int = 0, properties: "list[str] | None" = None,
         model: "Model | str" = IEEE) -> "Finding | None":
    """Search for a case where ``impl`` violates a property under ``model`` (hypothesis,
    derandomized by ``seed``); the first finding, or None if every property held on every case
    tried."""
    model = get_model(model)
    from hypothesis import HealthCheck, Phase, given, seed as hseed, settings
    from hypothesis import assume as h_assume

    from .cases.strategies import cases

    formats = [f for f in formats or ["float32", "float64", "float16", "bfloat16"]
               if supported(impl, f)[0]]
    # the cheapest, most telling property first, in every format, then the others; the exact
    # level last (a value within its bound that no admitted evaluation gives)
    for name in properties or list(ALL_PROPERTIES):
        prop = ALL_PROPERTIES[name]
        for fmt in formats:

            @hseed(seed)
            @settings(max_examples=max_examples, deadline=None, database=None,
                      phases=[Phase.explicit, Phase.generate, Phase.target],
                      suppress_health_check=list(HealthCheck))
            @given(labelled=cases(fmt))
            def run(labelled):
                h_assume(in_domain(fmt, labelled[1], model))
                prop(impl, fmt, labelled, model)

            try:
                run()
            except PropertyViolation as exc:
                return exc.finding
    return None
