"""``neuronspec check``: run the property suite and the test vectors on implementations, and
report per implementation, format and quantity, with a fingerprint of the evaluation each one
performs (which legal variant it matches bit for bit, whether it keeps subnormals, ...)."""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field
from fractions import Fraction

from . import __version__
from .bounds import IEEE, Model, OutOfDomain, case_bounds, get_model
from .formats import FORMATS, FLOAT32, Format, as_float, get_format
from .impls import ImplementationError
from .process import ProcessGaveUp
from .properties import (CHECKED, INPUTS, PROPERTIES, Finding, PropertyViolation,
                         replay_command, within_bounds)
from .rounded import ALL_VARIANTS, evaluate_variants
from .strategies import cases

__all__ = ["check", "QuantityStats", "FormatResult", "ImplementationResult", "REPORT_VERSION"]

REPORT_VERSION = 1
MAX_FAILURES = 5


@dataclass
class QuantityStats:
    checked: int = 0
    out_of_domain: int = 0
    failures: int = 0
    worst_ratio: float = 0.0
    worst_ulps: float = 0.0

    def as_dict(self) -> dict:
        return {"checked": self.checked, "outOfDomain": self.out_of_domain,
                "failures": self.failures, "worstErrorOverBound": _num(self.worst_ratio),
                "worstErrorUlps": _num(self.worst_ulps)}


def _num(x: float):
    return x if math.isfinite(x) else str(x)


@dataclass
class FormatResult:
    fmt: str
    status: str = "conformant"  # conformant | non-conformant | unsupported
    reason: str = ""
    cases: int = 0
    vector_cases: int = 0
    quantities: dict = field(default_factory=lambda: {q: QuantityStats() for q in CHECKED})
    property_failures: dict = field(default_factory=dict)  # property -> count
    failures: list = field(default_factory=list)  # Finding messages (first few)
    fingerprint: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)  # words on behaviour outside the model
    stopped: str = ""  # why the run stopped early (a process that cannot be restarted)

    def fail(self, finding: Finding) -> None:
        self.status = "non-conformant"
        self.property_failures[finding.prop] = self.property_failures.get(finding.prop, 0) + 1
        if finding.quantity in self.quantities:
            self.quantities[finding.quantity].failures += 1
        if len(self.failures) < MAX_FAILURES:
            self.failures.append(finding)

    def as_dict(self) -> dict:
        return {
            "format": self.fmt, "status": self.status, "reason": self.reason,
            "cases": self.cases, "vectorCases": self.vector_cases,
            "quantities": {q: s.as_dict() for q, s in self.quantities.items()},
            "propertyFailures": self.property_failures,
            "failures": [{"property": f.prop, "quantity": f.quantity, "regime": f.regime,
                          "inputs": {k: v.hex() for k, v in zip(INPUTS, f.case)},
                          "detail": f.detail, "message": f.message(),
                          "replay": replay_command(f.impl, get_format(f.fmt), f.case, f.model)}
                         for f in self.failures],
            "fingerprint": self.fingerprint,
            "behaviourOutsideModel": self.findings,
        }


@dataclass
class ImplementationResult:
    name: str
    origin: str
    version: str
    formats: dict = field(default_factory=dict)
    error: str = ""

    @property
    def conformant(self) -> bool:
        return not self.error and all(r.status != "non-conformant" for r in self.formats.values())

    def as_dict(self) -> dict:
        return {"name": self.name, "origin": self.origin, "version": self.version,
                "verdict": "conformant" if self.conformant else "non-conformant",
                "error": self.error,
                "formats": {k: v.as_dict() for k, v in self.formats.items()}}


# --- fingerprint ----------------------------------------------------------------------------

# dimension -> (quantities compared, variant A, words A, variant B, words B)
_DIMENSIONS = {
    "forward": (("y",), "canonical", "two roundings fl(fl(w*x)+b)",
                "fused-forward", "fused multiply-add fl(w*x+b)"),
    "update": (("w_new", "b_new"), "canonical", "two roundings fl(w-fl(lr*g))",
               "fused-update", "fused update fl(w-lr*g)"),
    "loss": (("loss",), "canonical", "r*r correctly rounded",
             "pow-one-ulp", "square off by one ulp (pow)"),
    "subnormals": (("y", "loss", "dL_dw", "dL_db"), "canonical", "preserved (gradual underflow)",
                   "ftz", "flushed to zero"),
    "float32 work": (("y", "loss", "dL_dw", "dL_db", "w_new", "b_new"), "canonical",
                     "each operation rounded to the format", "float32-kept",
                     "kept in float32, rounded when stored"),
}


class _Fingerprint:
    """Per dimension of the evaluation (fused forward, fused update, square, subnormals, float32
    work), the cases that tell its two variants apart and which one the implementation matched."""

    def __init__(self, fmt: Format) -> None:
        self.fmt = fmt
        self.dims = {k: v for k, v in _DIMENSIONS.items()
                     if k != "float32 work" or fmt.p < FLOAT32.p}
        names = {v for d in self.dims.values() for v in (d[1], d[3])}
        self.variants = [ALL_VARIANTS[n] for n in sorted(names)]
        self.counts = {k: [0, 0, 0] for k in self.dims}  # distinguishing, matched A, matched B

    def add(self, case: tuple, outputs: dict, bounds: dict) -> None:
        try:
            res = evaluate_variants(self.fmt, *case, self.variants)
        except ValueError:
            return
        for dim, (qs, a, _, b, _) in self.dims.items():
            if any(isinstance(bounds[q], OutOfDomain) for q in qs):
                continue
            ka = tuple(_bits(res[a][q]) for q in qs)
            kb = tuple(_bits(res[b][q]) for q in qs)
            if ka == kb:
                continue
            mine = tuple(_bits(outputs[q]) for q in qs)
            c = self.counts[dim]
            c[0] += 1
            c[1] += mine == ka
            c[2] += mine == kb

    def summary(self) -> dict:
        out = {}
        for dim, (qs, a, wa, b, wb) in self.dims.items():
            n, ma, mb = self.counts[dim]
            if n == 0:
                words = "not distinguished by these cases"
            elif ma == n:
                words = f"{wa} ({n}/{n} cases)"
            elif mb == n:
                words = f"{wb} ({n}/{n} cases)"
            else:
                words = f"{wa} in {ma}/{n} cases, {wb} in {mb}/{n}"
            out[dim] = {"cases": n, "matchedA": ma, "matchedB": mb, "A": a, "B": b,
                        "words": words}
        return out


def _bits(v: float):
    return "nan" if v != v else (v, math.copysign(1.0, v))


# --- the run ------------------------------------------------------------------------------------


def _supported(impl, fmt: str) -> "tuple[bool, str]":
    try:
        impl(fmt, (1.0, 0.0, 1.0, 0.0, 0.0))
    except NotImplementedError as exc:
        return False, str(exc) or "NotImplementedError"
    except ImplementationError:
        return True, ""  # reported with a case below
    return True, ""


def _record(result: FormatResult, fp: _Fingerprint, fmt: Format, labelled, check) -> None:
    if check is None:
        return
    result.cases += 1
    for q in CHECKED:
        st = result.quantities[q]
        if isinstance(check.bounds[q], OutOfDomain):
            st.out_of_domain += 1
            continue
        st.checked += 1
        r = check.ratios.get(q, 0.0)
        st.worst_ratio = max(st.worst_ratio, r)
        obs = check.outputs[q]
        if math.isfinite(obs):
            ulps = as_float(abs(Fraction(obs) - check.exact[q]) / fmt.ulp(check.exact[q]))
            st.worst_ulps = max(st.worst_ulps, ulps)
    fp.add(labelled[1], check.outputs, check.bounds)


def _check_case(impl, fmt: Format, labelled, model: Model, result: FormatResult,
                fp: _Fingerprint, target=None) -> None:
    if result.stopped:
        return
    try:
        _check_case_properties(impl, fmt, labelled, model, result, fp, target)
    except ProcessGaveUp as exc:
        result.stopped = str(exc)


def _check_case_properties(impl, fmt, labelled, model, result, fp, target) -> None:
    try:
        check = within_bounds(impl, fmt, labelled, model, target=target)
        _record(result, fp, fmt, labelled, check)
    except PropertyViolation as exc:
        result.cases += 1
        result.fail(exc.finding)
        if exc.finding.outputs is not None:  # a failing case still says what was computed
            fp.add(labelled[1], exc.finding.outputs,
                   case_bounds(fmt, dict(zip(INPUTS, labelled[1])), model))
        return
    for name, prop in PROPERTIES.items():
        if name == "within-bounds":
            continue
        try:
            prop(impl, fmt, labelled)
        except PropertyViolation as exc:
            result.fail(exc.finding)


def _run_format(impl, fmt_name: str, model: Model, examples: int, seed: int,
                vectors: "dict | None") -> FormatResult:
    from hypothesis import HealthCheck, Phase, given, seed as hseed, settings, target

    fmt = get_format(fmt_name)
    result = FormatResult(fmt_name)
    ok, why = _supported(impl, fmt_name)
    if not ok:
        result.status, result.reason = "unsupported", why
        return result
    fp = _Fingerprint(fmt)
    for tc, test in sorted((vectors or {}).get(fmt_name, {}).items()):
        case = tuple(float.fromhex(test["inputs"][k]["hex"]) for k in INPUTS)
        _check_case(impl, fmt, (f"vector {tc}", case), model, result, fp)
        result.vector_cases += 1

    @hseed(seed)
    @settings(max_examples=examples, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate, Phase.target],
              suppress_health_check=list(HealthCheck))
    @given(labelled=cases(fmt))
    def explore(labelled):
        if result.stopped:
            return
        b = case_bounds(fmt, dict(zip(INPUTS, labelled[1])), model)
        if all(isinstance(v, OutOfDomain) for v in b.values()):
            return
        _check_case(impl, fmt, labelled, model, result, fp, target=target)

    if examples and not result.stopped:
        explore()
    if result.stopped:
        result.status, result.reason = "non-conformant", f"run stopped: {result.stopped}"
    result.fingerprint = fp.summary()
    if not result.stopped:
        try:
            _outside_model(impl, fmt, model, result)
        except ProcessGaveUp as exc:
            result.stopped = str(exc)
            result.status, result.reason = "non-conformant", f"run stopped: {exc}"
    return result


def _outside_model(impl, fmt: Format, model: Model, result: FormatResult) -> None:
    """Probe behaviours the default model does not admit, and say what would declare them."""
    sub = result.fingerprint.get("subnormals", {})
    if sub.get("cases") and sub["matchedB"] > sub["matchedA"]:
        msg = ("flushes subnormal results to zero (not IEEE 754 gradual underflow); declare it "
               "with --model ieee+ftz")
        result.findings.append(msg)
        if not model.ftz and result.status == "conformant":
            result.status, result.reason = "non-conformant", msg
    _learning_rate_probe(impl, fmt, result)


def _lr_probe_cases(fmt: Format):
    """(case, lr variants) where the update tells the candidate learning rates apart."""
    for w, b, x, t in ((0.75, -0.5, 1.5, 0.25), (1.25, 0.375, -0.875, 2.0), (0.3, 0.1, 3.0, -1.0)):
        params = tuple(fmt.round(v) for v in (w, b, x, t))
        for lr in (0.1, 0.3, 1 / 3, 0.7, 0.0123):
            yield params, lr


def _update_of(fmt: Format, params: tuple, lr: float) -> set:
    res = evaluate_variants(fmt, *params, lr, [ALL_VARIANTS["canonical"], ALL_VARIANTS["fused-update"]])
    return {(r["w_new"], r["b_new"]) for r in res.values()}


def _learning_rate_probe(impl, fmt: Format, result: FormatResult) -> None:
    """Which learning rate does the implementation use: as given (binary64), rounded to the
    format, or rounded to a narrower format than its parameters (not admitted)?"""
    narrower = [f for f in FORMATS.values() if f.p < fmt.p]
    for params, lr64 in _lr_probe_cases(fmt):
        lr_f = fmt.round(lr64)
        candidates = {("rounded to the format" if fmt.p < 53 else "as given"):
                      _update_of(fmt, params, lr_f)}
        for nf in narrower:
            candidates[f"rounded to {nf.name} (narrower)"] = _update_of(fmt, params, nf.round(lr_f))
        if fmt.p < 53:
            candidates["as given (binary64)"] = _update_of(fmt, params, lr64)
        tried_lr = lr64 if fmt.p < 53 else lr_f
        sets = list(candidates.values())
        if any(a & b for i, a in enumerate(sets) for b in sets[i + 1:]):
            continue  # this probe cannot tell the candidates apart
        try:
            out = impl(fmt.name, params + (tried_lr,))
        except (NotImplementedError, ImplementationError):
            return
        used = [k for k, v in candidates.items() if (out["w_new"], out["b_new"]) in v]
        words = ("a binary64 lr is " + used[0]) if used else "lr used in none of the recognised ways"
        result.fingerprint["learning rate"] = {"words": words}
        if used and used[0].endswith("(narrower)"):
            msg = (f"rounds the learning rate to {used[0][11:-11]}, narrower than its {fmt.name} "
                   f"parameters: no model admits it; use lr in {fmt.name}")
            result.findings.append(msg)
            if result.status == "conformant":
                result.status, result.reason = "non-conformant", msg
        return
    result.fingerprint["learning rate"] = {"words": "not distinguished by the probes"}


def check(implementations: list, formats: "list[str] | None" = None, model: "Model | str" = IEEE,
          examples: int = 200, seed: int = 0, vectors: "dict | None" = None,
          progress=None) -> dict:
    """The whole check; returns the report as a dict (see ``spec/report.md``)."""
    model = get_model(model)
    started = time.perf_counter()
    report = {
        "reportVersion": REPORT_VERSION, "suiteVersion": __version__,
        "platform": f"{platform.system()} {platform.machine()}, "
                    f"{platform.python_implementation()} {platform.python_version()}",
        "settings": {"model": model.name, "examples": examples, "seed": seed,
                     "formats": formats or list(FORMATS),
                     "vectors": sum(len(v) for v in (vectors or {}).values())},
        "implementations": [],
    }
    for impl in implementations:
        res = ImplementationResult(impl.name, impl.origin, impl.version())
        for fmt_name in formats or list(FORMATS):
            if progress:
                progress(f"{impl.name} {fmt_name}")
            try:
                fr = _run_format(impl, fmt_name, model, examples, seed, vectors)
            except ProcessGaveUp as exc:  # while probing support, before any case
                res.error = str(exc)
                break
            res.formats[fmt_name] = fr
            if fr.stopped:
                res.error = fr.stopped
                break
        report["implementations"].append(res.as_dict())
        close = getattr(impl, "close", None)
        if close:
            close()
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["conformant"] = all(i["verdict"] == "conformant" for i in report["implementations"])
    return report
