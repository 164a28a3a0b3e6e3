"""``neuronspec check``: run the property suite and the test vectors on implementations, and
report per implementation, format and quantity, with a fingerprint of the evaluation each one
performs (which legal variant it matches bit for bit, whether it keeps subnormals, ...)."""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from reference.bounds import IEEE, Model, case_bounds, get_model, overflow_words
from reference.exact import exact_scales, exact_step, scale_ulp
from reference.judge import LEVELS, OUT_OF_DOMAIN
from reference.legal import legal_values
from reference.formats import FORMATS, Format, as_float, float_hex, get_format
from reference.step import ANCESTORS, INPUTS, NODE_OF, REQUIRED

from .. import __version__
from ..cases.strategies import cases
from ..errors import Interrupted, LoadError, ProcessGaveUp, UsageError
from ..findings import Finding, PropertyViolation
from ..artefacts import jsontext
from ..artefacts.peers import DEFAULT_PEER as PEER, PEER_TOLERANCES
from ..data import validate
from ..fingerprint import Fingerprint, learning_rate_probe
from ..properties import (PROPERTIES, Declined, calls_of, in_domain, supported,
                          unexplained_finding, within_bounds)
from .tally import KEEP, QuantityTally, finite_or_text
from .vectors import vector_case

__all__ = ["check", "FormatResult", "ImplementationResult", "REPORT_VERSION", "overall",
           "CONFORMANT", "NON_CONFORMANT", "NOT_CHECKED"]

REPORT_VERSION = 2
CONFORMANT, NON_CONFORMANT, NOT_CHECKED = "conformant", "non-conformant", "not checked"
#: Set (the self-tests set it), every report is validated against its schema before it is
#: returned (0.1 s for a full report): a report that does not match is an error.
VALIDATE = "NEURONSPEC_VALIDATE_REPORTS"
#: Plotted values per quantity and format at most (the case-by-case phases' first ones).
PLOT_POINTS = 2000


def overall(verdicts: "list[str]") -> str:
    """The verdict of a run: non-conformant if any is, else not checked if any is (or there
    was nothing to check), else conformant."""
    if NON_CONFORMANT in verdicts:
        return NON_CONFORMANT
    if NOT_CHECKED in verdicts or not verdicts:
        return NOT_CHECKED
    return CONFORMANT


@dataclass
class CaseFigures:
    """What the case-by-case phases (vectors, hypothesis) measure of one quantity beyond the
    verdict: errors in ulps of the scale the bound is built on (``reference.exact.
    exact_scales``), how many values are the correctly rounded exact value, and the points
    of the report's plot (conditioning, error/bound, error/peer tolerance)."""

    values: int = 0  # finite values in the domain, judged case by case
    correctly_rounded: int = 0
    scale_ulps: float = 0.0
    normal: int = 0  # the values whose every scale on the way is 0 or normal (scale_ulps')
    #: per peer tool: values within neuronspec's bound its default tolerance rejects, and
    #: values outside the bound it accepts
    peers: dict = field(default_factory=lambda: {tool: [0, 0] for tool in PEER_TOLERANCES})
    points: list = field(default_factory=list)


def _float(q: Fraction) -> float:
    """A non-negative exact value as a float, saturating at the largest finite one (a failure
    can be further off than binary64 holds)."""
    return min(as_float(q), sys.float_info.max)


def _digits(x: float) -> float:
    return float(f"{x:.4g}")


def _correctly_rounded(fmt: Format, observed: float, exact: Fraction) -> bool:
    """Whether ``observed`` is ``exact`` rounded to nearest in the format (a zero of either
    sign counts: the sign is the bounded level's to judge)."""
    return observed == fmt.round(exact)


def _worst_value(fmt: Format, model: Model, q: str, t: QuantityTally
                 ) -> "tuple[bool | None, str | None]":
    """Of the value with the largest error/bound: whether it is the exact value correctly
    rounded, and the first admitted evaluation that gives it bit for bit (None: none does,
    or the run kept no such value).  Either way a ratio of 1 is the bound attained by a
    legal result, not a near miss."""
    worst = t.worst or {}
    try:
        case = tuple(float.fromhex(v) for v in worst["case"])
        observed = worst["observed"]
        observed = float.fromhex(observed) if isinstance(observed, str) else float(observed)
    except (KeyError, TypeError, ValueError):
        return None, None
    if not math.isfinite(observed):
        return False, None
    exact = exact_step(*case).as_fractions()[q]
    try:
        explained = legal_values(fmt, case, model).explain(q, observed)
    except ValueError:  # a case outside what the legal values cover: say nothing
        return _correctly_rounded(fmt, observed, exact), None
    return (_correctly_rounded(fmt, observed, exact),
            explained.variants[0] if explained.explained else None)


def _quantity_report(fmt: Format, model: Model, q: str, t: QuantityTally,
                     f: CaseFigures) -> dict:
    rounded, evaluation = _worst_value(fmt, model, q, t) if t.checked else (None, None)
    return {"checked": t.checked, "outOfDomain": t.out_of_domain,
            "outOfDomainWhy": dict(sorted(t.out_of_domain_why.items(), key=lambda kv: -kv[1])),
            "failures": t.violations,
            "worstErrorOverBound": finite_or_text(t.max_ratio),
            "worstIsCorrectlyRounded": rounded, "worstEvaluation": evaluation,
            "worstUlpsOfScale": f.scale_ulps, "ulpsOfScaleValues": f.normal,
            "caseByCase": f.values, "correctlyRounded": f.correctly_rounded,
            "explained": t.explained, "unexplained": t.unexplained,
            "explainedBy": dict(sorted(t.by_variant.items(), key=lambda kv: -kv[1]))}


@dataclass
class FormatResult:
    fmt: str
    status: str = "conformant"  # conformant | non-conformant | unsupported | not checked
    reason: str = ""
    cases: int = 0
    vector_cases: int = 0
    quantities: dict = field(default_factory=lambda: {q: QuantityTally() for q in REQUIRED})
    figures: dict = field(default_factory=lambda: {q: CaseFigures() for q in REQUIRED})
    property_failures: dict = field(default_factory=dict)  # property -> count
    failures: list = field(default_factory=list)  # the first few findings
    fingerprint: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)  # words on behaviour outside the model
    stopped: str = ""  # why the run stopped early (a process that cannot be restarted)
    level: str = "exact"  # the level that sets the status (reference.judge.LEVELS)
    model: str = "ieee"
    declined: dict = field(default_factory=dict)  # why -> cases declined (a negative lr, ...)
    sweep: dict = field(default_factory=dict)  # the seeded sweep phase: what it ran and found
    exact_failures: list = field(default_factory=list)  # the first unexplained values
    levels: dict = field(default_factory=dict)  # level -> status, once the format is done

    @property
    def unexplained(self) -> int:
        return sum(t.unexplained for t in self.quantities.values())

    def not_explained(self, finding: Finding) -> None:
        """A value within its bound that no admitted evaluation gives (the exact level)."""
        if len(self.exact_failures) < KEEP:
            self.exact_failures.append(finding)

    def decide(self) -> None:
        """The status at each level, and the one the run's level sets."""
        bounded = self.status
        exact = NON_CONFORMANT if bounded == CONFORMANT and self.unexplained else bounded
        self.levels = {"bounded": bounded, "exact": exact}
        if self.level == "exact" and exact != bounded:
            self.status = exact
            self.reason = self.reason or (f"{self.unexplained} values that no admitted "
                                          "evaluation gives (the exact level)")

    def fail(self, finding: Finding) -> None:
        self.status = NON_CONFORMANT
        self.property_failures[finding.prop] = self.property_failures.get(finding.prop, 0) + 1
        if finding.quantity in self.quantities:
            self.quantities[finding.quantity].violations += 1
        if len(self.failures) < KEEP:
            self.failures.append(finding)

    def outside_model(self, words: str, declared: bool) -> None:
        """Behaviour no model admits, or that the model in use does not declare."""
        self.findings.append(words)
        if not declared and self.status == "conformant":
            self.status, self.reason = NON_CONFORMANT, words

    def as_dict(self) -> dict:
        shown = (self.failures + self.exact_failures)[:KEEP]
        return {
            "format": self.fmt, "status": self.status, "reason": self.reason,
            "levels": self.levels or {"bounded": self.status, "exact": self.status},
            "cases": self.cases, "vectorCases": self.vector_cases,
            "unexplained": self.unexplained, "declined": self.declined, "sweep": self.sweep,
            "quantities": {q: _quantity_report(get_format(self.fmt), get_model(self.model), q,
                                               t, self.figures[q])
                           for q, t in self.quantities.items()},
            "propertyFailures": self.property_failures,
            "failures": [{"property": f.prop, "quantity": f.quantity, "regime": f.regime,
                          "inputs": {k: v.hex() for k, v in zip(INPUTS, f.case)},
                          "detail": f.detail, "errorOverBound": _text(_finding_ratio(f)),
                          "message": f.message(), "replay": f.replay()}
                         for f in shown],
            "fingerprint": self.fingerprint,
            "behaviourOutsideModel": self.findings,
            **({"plot": self.plot()} if any(f.points for f in self.figures.values()) else {}),
        }

    def plot(self) -> dict:
        """The plot's data: per quantity [conditioning, error/bound, error/peer tolerance]."""
        rtol, atol = PEER_TOLERANCES[PEER][self.fmt]
        values = sum(f.values for f in self.figures.values())
        peers = {tool: {"rtol": t[self.fmt][0], "atol": t[self.fmt][1], "values": values,
                        "rejectedWithinBound": sum(f.peers[tool][0]
                                                   for f in self.figures.values()),
                        "acceptedOutsideBound": sum(f.peers[tool][1]
                                                    for f in self.figures.values())}
                 for tool, t in PEER_TOLERANCES.items()}
        return {"peer": PEER, "peerTolerance": {"rtol": rtol, "atol": atol}, "peers": peers,
                "points": {q: f.points for q, f in self.figures.items()}}


@dataclass
class ImplementationResult:
    name: str
    origin: str
    version: str
    formats: dict = field(default_factory=dict)
    error: str = ""
    interrupted: bool = False

    @property
    def verdict(self) -> str:
        """non-conformant: something failed; not checked: no format could be checked (each
        unsupported) or the run was interrupted first; else conformant."""
        if self.error or any(r.status == NON_CONFORMANT for r in self.formats.values()):
            return NON_CONFORMANT
        if self.interrupted or not any(r.status == "conformant"
                                       for r in self.formats.values()):
            return NOT_CHECKED
        return CONFORMANT

    def as_dict(self) -> dict:
        return {"name": self.name, "origin": self.origin, "version": self.version,
                "verdict": self.verdict, "error": self.error,
                "formats": {k: v.as_dict() for k, v in self.formats.items()}}


# --- the run ------------------------------------------------------------------------------------


def _figures(f: CaseFigures, fmt: Format, scales: dict, q: str, observed: float,
             exact: Fraction, ratio: float) -> None:
    """What one finite value judged case by case adds to its quantity's figures (in the
    domain, or failing its bound: a plot shows those above the line)."""
    error, scale, size = abs(Fraction(observed) - exact), scales[NODE_OF[q]], abs(exact)
    f.values += 1
    f.correctly_rounded += _correctly_rounded(fmt, observed, exact)
    # ulps of the scale mean something where every rounding on the way is relative: where
    # a scale is subnormal, an underflow's absolute error (the bound's eta terms, which lr
    # may amplify) can be the whole scale
    if all(scales[n] == 0 or scales[n] >= fmt.smallest_normal for n in ANCESTORS[NODE_OF[q]]):
        f.normal += 1
        f.scale_ulps = max(f.scale_ulps, _float(error / scale_ulp(fmt, scale)))
    over_peer = {}  # error / each peer tool's default tolerance
    for tool, tolerances in PEER_TOLERANCES.items():
        rtol, atol = tolerances[fmt.name]
        tolerance = Fraction(atol) + Fraction(rtol) * size  # (0 for an exact 0 and atol 0)
        over_peer[tool] = _float(error / tolerance) if tolerance else \
            (math.inf if error else 0.0)
        rejects = error > tolerance
        f.peers[tool][0] += rejects and ratio <= 1
        f.peers[tool][1] += not rejects and ratio > 1
    if len(f.points) < PLOT_POINTS and math.isfinite(ratio):  # (4 digits: a picture's worth)
        kappa = _digits(_float(scale / size)) if size else (1.0 if scale == 0 else "inf")
        f.points.append([kappa, _digits(ratio), _digits(over_peer[PEER])])


def _text(ratio: "float | None") -> "float | str | None":
    return None if ratio is None else finite_or_text(ratio)


def _record_ratio(record: dict) -> "float | None":
    """A sweep finding's error/bound, where its value was finite (an unexplained value's
    record has none)."""
    try:
        observed = record["observed"]
        observed = float.fromhex(observed) if isinstance(observed, str) else float(observed)
        return float(record["ratio"]) if math.isfinite(observed) else None
    except (KeyError, TypeError, ValueError):
        return None


def _finding_ratio(finding: Finding) -> "float | None":
    """A failing value's error/bound (inf for an error over a zero bound), or None where the
    finding has none (a value that is not finite, a property of the whole case)."""
    observed = finding.observed
    if (finding.exact is None or observed is None or not math.isfinite(observed)
            or not isinstance(finding.bound, (Fraction, float, int))):
        return None
    error = abs(Fraction(observed) - finding.exact)
    if not finding.bound:
        return math.inf if error else 0.0
    return _float(error / Fraction(finding.bound))


def _failed_figures(result: "FormatResult", fmt: Format, finding: Finding) -> None:
    """A value outside its bound still counts in the ulps of scale and the plot."""
    q, ratio = finding.quantity, _finding_ratio(finding)
    if finding.prop != "within-bounds" or q not in result.figures or ratio is None:
        return
    _figures(result.figures[q], fmt, exact_scales(*finding.case), q, finding.observed,
             finding.exact, ratio)


def _record(result: FormatResult, fp: Fingerprint, fmt: Format, labelled, check, impl,
            model: Model) -> None:
    if check is None:
        return
    regime, case = labelled
    result.cases += 1
    scales = exact_scales(*case)
    for q in REQUIRED:
        t, f = result.quantities[q], result.figures[q]
        j = check.judgements[q]
        e = check.explanations[q]
        if e.explained:
            t.explained_by({e.variants[0]: 1})
        else:
            t.not_explained(1, [])
            result.not_explained(unexplained_finding(impl, fmt, labelled, check, q, model))
        if j.verdict == OUT_OF_DOMAIN:  # an admitted overflow: no bound to compare with
            t.outside(overflow_words(j.bound.origin))
            continue
        t.checked += 1
        obs = j.observed
        t.saw(j.ratio, regime, lambda: {"case": [float_hex(v) for v in case],
                                        "observed": float_hex(obs)})
        if math.isfinite(obs):
            _figures(f, fmt, scales, q, obs, j.exact, j.ratio)
    fp.add(case, check.outputs, check.bounds)


def _check_case(impl, fmt: Format, labelled, model: Model, result: FormatResult,
                fp: Fingerprint, target=None) -> None:
    if result.stopped:
        return
    try:
        _check_case_properties(impl, fmt, labelled, model, result, fp, target)
    except ProcessGaveUp as exc:
        result.stopped = str(exc)


def _check_case_properties(impl, fmt, labelled, model, result, fp, target) -> None:
    prefetch = getattr(impl, "prefetch", None)
    if prefetch is not None:  # a process: its requests go at once, it works while we judge
        prefetch(fmt.name, calls_of(labelled[1]))
    try:
        check = within_bounds(impl, fmt, labelled, model, target=target)
        if isinstance(check, Declined):  # a reported skip: the other properties would be too
            result.declined[check.reason.split(" (")[0]] = \
                result.declined.get(check.reason.split(" (")[0], 0) + 1
            return
        _record(result, fp, fmt, labelled, check, impl, model)
    except PropertyViolation as exc:
        result.cases += 1
        result.fail(exc.finding)
        _failed_figures(result, fmt, exc.finding)
        if exc.finding.outputs is not None:  # a failing case still says what was computed
            fp.add(labelled[1], exc.finding.outputs, case_bounds(fmt, labelled[1], model))
        return
    for name, prop in PROPERTIES.items():
        if name == "within-bounds":
            continue
        try:
            prop(impl, fmt, labelled, model)
        except PropertyViolation as exc:
            result.fail(exc.finding)


def _sweep_phase(sweeper, fmt: Format, cases: int, seed: int, result: FormatResult) -> None:
    """A seeded sweep of ``cases`` cases (the batch path where the implementation offers one):
    what a million-case sweep finds, in the check.  Its tallies join the format's."""
    from .sweep import CHUNK

    try:
        r = sweeper.run(fmt, cases, seed, chunk=min(CHUNK, 1 << 15), why=True)
    except (UsageError, LoadError) as exc:
        result.sweep = {"cases": 0, "skipped": str(exc)}
        return
    for q in REQUIRED:
        result.quantities[q].merge(r.tally(q))
    findings = [v for v in r.first_violations] + [
        u for t in r.quantities.values() for u in t.first_unexplained]
    result.sweep = {"cases": r.cases, "path": r.path, "violations": r.violations,
                    "unexplained": r.unexplained, "failed": r.failed, "declined": r.declined,
                    "unchecked": r.unchecked,
                    "seconds": round(r.wall, 2),
                    "findings": [{"quantity": f["quantity"], "why": f["why"],
                                  "errorOverBound": _text(_record_ratio(f)),
                                  "replay": f["replay"]} for f in findings[:KEEP]]}
    if r.stopped:
        result.sweep["stopped"] = r.stopped
    for why, n in r.declined.items():
        result.declined[why] = result.declined.get(why, 0) + n
    if r.violations or r.stopped:
        result.status = NON_CONFORMANT
        result.reason = result.reason or (
            f"the sweep phase found {r.violations} failures in {r.cases:,} cases"
            + (f" and stopped: {r.stopped}" if r.stopped else ""))


def _run_format(impl, fmt_name: str, model: Model, examples: int, seed: int,
                vectors: "dict | None", results: dict, level: str = "exact",
                sweep: int = 0, sweeper=None) -> FormatResult:
    """Check one format; the result is in ``results`` from the start, so that an interrupted
    run still reports what it found."""
    from hypothesis import HealthCheck, Phase, given, seed as hseed, settings, target

    fmt = get_format(fmt_name)
    result = results[fmt_name] = FormatResult(fmt_name, level=level, model=model.name)
    ok, why = supported(impl, fmt_name)
    if not ok:
        result.status, result.reason = "unsupported", why
        return result
    fp = Fingerprint(fmt)
    for tc, test in sorted((vectors or {}).get(fmt_name, {}).items()):
        _check_case(impl, fmt, (f"vector {tc}", vector_case(test)), model, result, fp)
        result.vector_cases += 1

    @hseed(seed)
    @settings(max_examples=max(examples, 1), deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate, Phase.target],
              suppress_health_check=list(HealthCheck))
    @given(labelled=cases(fmt))
    def explore(labelled):
        if result.stopped or not in_domain(fmt, labelled[1], model):
            return
        _check_case(impl, fmt, labelled, model, result, fp, target=target)

    if examples and not result.stopped:
        explore()
    if sweep and sweeper is not None and not result.stopped:
        _sweep_phase(sweeper, fmt, sweep, seed, result)
    if result.stopped:
        result.status, result.reason = NON_CONFORMANT, f"run stopped: {result.stopped}"
    elif result.cases == 0 and not result.sweep.get("cases") and result.status == CONFORMANT:
        result.status = NOT_CHECKED
        result.reason = ("no case was checked (no vectors for this format and "
                         f"{examples} hypothesis examples in the domain)")
    result.fingerprint = fp.summary()
    if not result.stopped:
        try:
            _outside_model(impl, fmt, model, result)
        except ProcessGaveUp as exc:
            result.stopped = str(exc)
            result.status, result.reason = NON_CONFORMANT, f"run stopped: {exc}"
    result.decide()
    return result


def _outside_model(impl: Any, fmt: Format, model: Model, result: FormatResult) -> None:
    """Probe behaviours the default model does not admit, and say what would declare them."""
    sub = result.fingerprint.get("subnormals", {})
    if sub.get("cases") and sub["matchedB"] > sub["matchedA"]:
        result.outside_model("flushes subnormal results to zero (not IEEE 754 gradual "
                             "underflow); declare it with --model ieee+ftz", model.ftz)
    probe = learning_rate_probe(impl, fmt)
    if probe is not None:
        words, finding = probe
        result.fingerprint["learning rate"] = {"words": words}
        if finding:
            result.outside_model(finding, False)


def _sweeper(impl, model: Model, timeout: float):
    """Sweeps for ``impl``: a Python implementation is loaded again in a supervised worker
    process, driven from here (its batch callable, where it has one; ``timeout``: seconds a
    chunk may take); a ``--cmd`` program is driven as it is."""
    from .sweep import Sweeper

    spec = getattr(impl, "spec", "") or impl.name
    if spec.startswith("--cmd "):
        return Sweeper(spec, model.name, impl=impl)
    return Sweeper(spec, model.name, timeout=timeout, local=True)


def check(implementations: list, formats: "list[str] | None" = None, model: "Model | str" = IEEE,
          examples: int = 200, seed: int = 0, vectors: "dict | None" = None,
          progress=None, level: str = "exact", sweep: int = 0,
          sweep_timeout: float = 600.0) -> dict:
    """The whole check; returns the report as a dict (see ``spec/report.md``).  ``level``:
    which level of the verdict sets the statuses (both are reported); ``sweep``: cases of the
    seeded sweep phase per format (0: none), each chunk within ``sweep_timeout`` seconds."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    model = get_model(model)
    started = time.perf_counter()
    report = {
        "reportVersion": REPORT_VERSION, "suiteVersion": __version__,
        "platform": f"{platform.system()} {platform.machine()}, "
                    f"{platform.python_implementation()} {platform.python_version()}",
        "settings": {"model": model.name, "level": level, "examples": examples, "seed": seed,
                     "sweep": sweep,
                     "formats": formats or list(FORMATS),
                     "vectors": sum(len((vectors or {}).get(f, {}))
                                    for f in formats or list(FORMATS))},
        "implementations": [],
    }
    interrupted: "Interrupted | None" = None
    for impl in implementations:
        res = ImplementationResult(impl.name, impl.origin, impl.version())
        sweeper = _sweeper(impl, model, sweep_timeout) if sweep else None
        try:
            for fmt_name in formats or list(FORMATS):
                if progress:
                    progress(f"{impl.name} {fmt_name}")
                try:
                    fr = _run_format(impl, fmt_name, model, examples, seed, vectors,
                                     res.formats, level, sweep, sweeper)
                except ProcessGaveUp as exc:  # while probing support, before any case
                    res.error = str(exc)
                    break
                if fr.stopped:
                    res.error = fr.stopped
                    break
        except Interrupted as exc:  # a signal: keep what was found, say so, stop
            res.interrupted, interrupted = True, exc
        finally:
            if sweeper is not None:
                sweeper.close()
            close = getattr(impl, "close", None)
            if close:
                close()
        report["implementations"].append(res.as_dict())
        if interrupted:
            break
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["verdict"] = overall([i["verdict"] for i in report["implementations"]])
    report["conformant"] = report["verdict"] == CONFORMANT
    if interrupted is not None:
        report["interrupted"] = interrupted.signal_name
    if os.environ.get(VALIDATE):
        validate(jsontext.standard(report), "report.schema.json")
    return report
