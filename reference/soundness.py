"""Soundness and tightness of the bounds, measured: exact reference vs every evaluation variant
(and bundled implementations) on regime-drawn cases.

For each case the exact values (mpmath), the a-priori bounds of the declared model and every
bit-exact evaluation variant the model admits are computed; each distinct computed value is
compared exactly (integer arithmetic) with its bound.  Zero violations is the only pass; the
largest error/bound ratio per quantity is the bound's measured tightness.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable

import numpy as np

from .bounds import IEEE, MODELS, OutOfDomain, case_bounds
from .exact import QUANTITIES, exact_step
from .formats import FORMATS, Format, float_hex
from .peers import MUTANTS, PEER_TOLERANCES, peer_accepts
from .regimes import REGIMES, regime_cases
from .rounded import evaluate_variants, variants_for

__all__ = ["QuantityStats", "Tally", "check_values", "run_chunk", "run", "CHECKED"]

#: The peer comparison runs on one chunk in this many (its rates need far fewer cases).
COMPARE_EVERY = 10

#: The other models (strict, ftz, lr-binary64) are checked on one chunk in this many: the
#: million-case claim is about the default model; the others get a quarter of the cases.
OPTIONS_EVERY = 4

#: Regimes whose cases also check the flush-to-zero and binary64-lr options.
FTZ_REGIMES = ("generic", "tiny")
LR64_REGIMES = ("generic", "lr-range")

#: The quantities an implementation returns (dL_dy is optional and equals dL_db).
CHECKED = ("y", "loss", "dL_dw", "dL_db", "w_new", "b_new")


def _ratio_of(value) -> tuple[int, int]:
    """(numerator, denominator) of an exact value: mpf, Fraction or float."""
    if isinstance(value, float):
        return value.as_integer_ratio()
    if isinstance(value, Fraction):
        return value.numerator, value.denominator
    sign, man, exp, _ = value._mpf_  # mpmath.mpf
    n = -man if sign else man
    return (n << exp, 1) if exp >= 0 else (n, 1 << -exp)


def error_ratio(computed: float, exact: tuple[int, int], bound) -> "tuple[float, bool]":
    """(|computed - exact| / bound as a float, exceeds?) with the comparison done exactly."""
    if not math.isfinite(computed):
        return math.inf, True
    cn, cd = computed.as_integer_ratio()
    vn, vd = exact
    en, ed = abs(cn * vd - vn * cd), cd * vd
    if isinstance(bound, float):
        bn, bd = bound.as_integer_ratio()
    else:
        bn, bd = bound.numerator, bound.denominator
    if bn == 0:
        return (0.0, False) if en == 0 else (math.inf, True)
    num, den = en * bd, bn * ed
    return num / den, num > den


@dataclass
class QuantityStats:
    checked: int = 0
    out_of_domain: int = 0
    violations: int = 0
    max_ratio: float = 0.0
    worst: "dict[str, Any] | None" = None
    first_violations: list = field(default_factory=list)
    by_regime: dict = field(default_factory=dict)  # regime -> largest error/bound ratio

    def merge(self, other: "QuantityStats") -> None:
        for k, v in other.by_regime.items():
            self.by_regime[k] = max(self.by_regime.get(k, 0.0), v)
        self.checked += other.checked
        self.out_of_domain += other.out_of_domain
        self.violations += other.violations
        if other.max_ratio > self.max_ratio or self.worst is None and other.worst is not None:
            self.max_ratio, self.worst = other.max_ratio, other.worst
        self.first_violations = (self.first_violations + other.first_violations)[:5]

    def as_dict(self) -> dict:
        return {"checked": self.checked, "out_of_domain": self.out_of_domain,
                "violations": self.violations, "max_ratio": self.max_ratio,
                "worst": self.worst, "first_violations": self.first_violations,
                "by_regime": self.by_regime}


class Tally:
    """Statistics keyed by (subject, quantity): subject is a model's variants or an impl."""

    def __init__(self) -> None:
        self.stats: dict[str, dict[str, QuantityStats]] = {}
        self.regimes: dict[str, int] = {}
        self.errors: list[str] = []
        # "scheme|regime" -> {"cases", "false_rejections", "mutants": {name: {"cases", "missed"}}}
        self.compare: dict[str, dict] = {}

    def get(self, subject: str, quantity: str) -> QuantityStats:
        return self.stats.setdefault(subject, {}).setdefault(quantity, QuantityStats())

    def merge(self, other: "Tally") -> None:
        for subject, qs in other.stats.items():
            for q, s in qs.items():
                self.get(subject, q).merge(s)
        for k, v in other.regimes.items():
            self.regimes[k] = self.regimes.get(k, 0) + v
        self.errors = (self.errors + other.errors)[:20]
        for scheme, d in other.compare.items():
            mine = self.compare.setdefault(scheme, {"cases": 0, "false_rejections": 0, "mutants": {}})
            mine["cases"] += d["cases"]
            mine["false_rejections"] += d["false_rejections"]
            for m, md in d["mutants"].items():
                mm = mine["mutants"].setdefault(m, {"cases": 0, "missed": 0})
                mm["cases"] += md["cases"]
                mm["missed"] += md["missed"]

    def as_dict(self) -> dict:
        return {"regimes": self.regimes, "errors": self.errors, "compare": self.compare,
                "subjects": {s: {q: st.as_dict() for q, st in qs.items()}
                             for s, qs in self.stats.items()}}


def _case_text(fmt: Format, case, regime: str) -> dict:
    return {"regime": regime, **{k: float_hex(v) for k, v in zip(("w", "b", "x", "t", "lr"), case)}}


def check_values(tally: Tally, subject: str, fmt: Format, case, regime: str, exact_ratios,
                 bounds, computed_sets: "dict[str, dict[str, str]]") -> None:
    """Compare each distinct computed value (value -> source names) with its bound."""
    for q, values in computed_sets.items():
        st = tally.get(subject, q)
        bound = bounds[q]
        if isinstance(bound, OutOfDomain):
            st.out_of_domain += 1
            continue
        st.checked += 1
        for value, source in values.items():
            ratio, bad = error_ratio(value, exact_ratios[q], bound)
            if ratio > st.by_regime.get(regime, -1.0):
                st.by_regime[regime] = ratio
            if ratio > st.max_ratio or st.worst is None:
                st.max_ratio = ratio
                st.worst = {"ratio": ratio, "source": source, "bound": float(bound),
                            "computed": float_hex(value), **_case_text(fmt, case, regime)}
            if bad:
                st.violations += 1
                if len(st.first_violations) < 5:
                    st.first_violations.append({"ratio": ratio, "source": source,
                                                "computed": float_hex(value),
                                                **_case_text(fmt, case, regime)})


def _distinct(results: "dict[str, dict[str, float]]") -> "dict[str, dict[float, str]]":
    """Per quantity: each distinct value (bitwise; NaNs together) -> the first variant giving it."""
    out: dict[str, dict] = {q: {} for q in CHECKED}
    seen: dict[str, set] = {q: set() for q in CHECKED}
    for name, res in results.items():
        for q in CHECKED:
            v = res[q]
            key = (v, math.copysign(1.0, v)) if v == v else "nan"
            if key not in seen[q]:
                seen[q].add(key)
                out[q][v] = name
    return out


def _load_impls(names: Iterable[str], fmt: Format):
    from .bundled import ImplementationUnavailable, load_bundled

    impls = {}
    for name in names:
        try:
            step = load_bundled(name)
        except ImplementationUnavailable:
            continue
        impls[name] = step
    return impls


def run_chunk(spec: dict) -> dict:
    """One chunk of a soundness run (picklable in and out, for worker processes).

    spec: format, regime, seed, chunk, cases, variants (bool), impls (list of names),
    options (bool: also check the ftz and lr-binary64 models).
    """
    fmt: Format = FORMATS[spec["format"]]
    regime = spec["regime"]
    rng = np.random.default_rng([spec["seed"], spec["chunk"], fmt.p, list(REGIMES).index(regime)])
    cases = regime_cases(fmt, regime, rng, spec["cases"])
    tally = Tally()
    tally.regimes[regime] = len(cases)
    ieee_variants = variants_for(fmt)
    strict_names = {v.name for v in variants_for(fmt, pow_square=False, wide_work=False)}
    ftz_variants = [v for v in variants_for(fmt, ftz=True) if v.ftz]
    lr64_variants = [v for v in variants_for(fmt, lr_in_format=False)]
    impls = _load_impls(spec.get("impls", ()), fmt)
    for case in cases:
        inputs = dict(zip(("w", "b", "x", "t", "lr"), case))
        exact = exact_step(*case)
        ratios = {q: _ratio_of(exact[q]) for q in QUANTITIES}
        bounds = case_bounds(fmt, inputs, IEEE)
        if spec.get("variants", True):
            results = evaluate_variants(fmt, *case, ieee_variants)
            check_values(tally, "ieee", fmt, case, regime, ratios, bounds, _distinct(results))
            if spec["chunk"] % OPTIONS_EVERY == 0:
                strict = {k: v for k, v in results.items() if k in strict_names}
                check_values(tally, "strict", fmt, case, regime, ratios,
                             case_bounds(fmt, inputs, MODELS["strict"]), _distinct(strict))
            if (spec.get("compare") and spec["chunk"] % COMPARE_EVERY == 0
                    and all(not isinstance(bounds[q], OutOfDomain) for q in CHECKED)):
                compare_schemes(tally, fmt, case, regime, ratios, bounds, results)
        for name, step in impls.items():
            try:
                out = step(*case, dtype=fmt.name)
            except NotImplementedError:
                continue
            except ArithmeticError as exc:
                # CPython's float ** raises OverflowError instead of returning inf: allowed
                # where some quantity is outside the bounded domain, a finding elsewhere
                if all(not isinstance(bounds[q], OutOfDomain) for q in CHECKED):
                    tally.errors.append(f"{name} raised {type(exc).__name__}: {exc} on {case}")
                else:
                    tally.get(f"impl:{name}{spec.get('suffix', '')}",
                              "raised outside domain").checked += 1
                continue
            except Exception as exc:  # an implementation that raises is a finding, not a crash
                tally.errors.append(f"{name} raised {type(exc).__name__}: {exc} on {case}")
                continue
            values = {q: {float(out[q]): name} for q in CHECKED}
            check_values(tally, f"impl:{name}{spec.get('suffix', '')}", fmt, case, regime,
                         ratios, bounds, values)
        if not (spec.get("options") and spec.get("variants", True)
                and spec["chunk"] % OPTIONS_EVERY == 0):
            continue
        if regime in FTZ_REGIMES:
            ftz_bounds = case_bounds(fmt, inputs, MODELS["ieee+ftz"])
            results = evaluate_variants(fmt, *case, ftz_variants)
            check_values(tally, "ieee+ftz", fmt, case, regime, ratios, ftz_bounds,
                         _distinct(results))
        if regime in LR64_REGIMES and fmt.p < 53:  # lr as a binary64 value next to the format's
            # a binary64 lr with random low bits near the case's lr: rounding it to the
            # format moves it by up to half an ulp of the format
            lr64 = (case[4] or fmt.smallest_normal) * float(rng.uniform(0.75, 1.5))
            if not math.isfinite(fmt.round(lr64)):
                continue
            case64 = case[:4] + (lr64,)
            inputs64 = dict(inputs, lr=lr64)
            exact64 = exact_step(*case64)
            ratios64 = {q: _ratio_of(exact64[q]) for q in QUANTITIES}
            b64 = case_bounds(fmt, inputs64, MODELS["ieee+lr-binary64"])
            results = evaluate_variants(fmt, *case64, lr64_variants)
            check_values(tally, "ieee+lr-binary64", fmt, case64, regime, ratios64, b64,
                         _distinct(results))
    return tally.as_dict()


def compare_schemes(tally: Tally, fmt: Format, case, regime: str, ratios, bounds,
                    results) -> None:
    """Verdicts of neuronspec's bounds and of peers' default tolerances on one in-domain case:
    does a scheme reject any correct (admitted) result?  does it accept a wrong one?"""
    expected = {q: ratios[q][0] / ratios[q][1] for q in CHECKED}

    def accepts(scheme: str, out: dict) -> bool:
        for q in CHECKED:
            if scheme == "neuronspec":
                if error_ratio(out[q], ratios[q], bounds[q])[1]:
                    return False
            elif not peer_accepts(scheme, fmt, out[q], expected[q]):
                return False
        return True

    wrong = {}
    for name, make in MUTANTS.items():
        m = make(fmt, case, results["canonical"])
        if m is not None:
            wrong[name] = m
    for scheme in ("neuronspec", *PEER_TOLERANCES):
        d = tally.compare.setdefault(f"{scheme}|{regime}",
                                     {"cases": 0, "false_rejections": 0, "mutants": {}})
        d["cases"] += 1
        if not all(accepts(scheme, out) for out in results.values()):
            d["false_rejections"] += 1
        for name, out in wrong.items():
            md = d["mutants"].setdefault(name, {"cases": 0, "missed": 0})
            md["cases"] += 1
            md["missed"] += accepts(scheme, out)


def _tally_from(d: dict) -> Tally:
    t = Tally()
    t.regimes = dict(d["regimes"])
    t.errors = list(d["errors"])
    t.compare = d["compare"]
    for subject, qs in d["subjects"].items():
        for q, s in qs.items():
            st = t.get(subject, q)
            st.checked, st.out_of_domain, st.violations = s["checked"], s["out_of_domain"], s["violations"]
            st.max_ratio, st.worst, st.first_violations = s["max_ratio"], s["worst"], s["first_violations"]
            st.by_regime = dict(s["by_regime"])
    return t


def _init_worker(env: dict) -> None:
    os.environ.update(env)


def run(fmt_name: str, cases: int, seed: int = 0, workers: int = 1, chunk: int = 2000,
        impls: Iterable[str] = (), variants: bool = True, options: bool = True,
        compare: bool = True, env: "dict | None" = None, suffix: str = "",
        progress=None) -> dict:
    """Run ``cases`` cases of ``fmt_name``, spread evenly over the regimes, in ``workers``
    processes; returns the merged tally as a dict plus timing."""
    regimes = list(REGIMES)
    per_regime = max(1, cases // len(regimes))
    specs = []
    for regime in regimes:
        done, k = 0, 0
        while done < per_regime:
            n = min(chunk, per_regime - done)
            specs.append({"format": fmt_name, "regime": regime, "seed": seed, "chunk": k,
                          "cases": n, "impls": list(impls), "variants": variants,
                          "options": options, "compare": compare, "suffix": suffix})
            done += n
            k += 1
    total = Tally()
    start = time.perf_counter()
    if workers <= 1 and not env:
        for i, spec in enumerate(specs):
            total.merge(_tally_from(run_chunk(spec)))
            if progress:
                progress(i + 1, len(specs))
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(env or {},)) as pool:
            for i, d in enumerate(pool.imap_unordered(run_chunk, specs)):
                total.merge(_tally_from(d))
                if progress:
                    progress(i + 1, len(specs))
    out = total.as_dict()
    out["seconds"] = time.perf_counter() - start
    out["cases"] = sum(total.regimes.values())
    return out


TORCH_IMPLS = ("torch_sgd", "torch_autograd")


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def soundness_report(formats: list[str], cases: int, seed: int, workers: int,
                     torch_cases: "dict[str, int]", stream=None) -> dict:
    """The full soundness run behind ``neuronspec soundness``: per format, every admitted
    variant and the bundled implementations on ``cases`` cases; torch on ``torch_cases[fmt]``
    of the same cases, and float32 torch again under ATEN_CPU_CAPABILITY=default."""
    import platform
    import sys

    import mpmath

    from . import __version__

    stream = stream or sys.stderr
    has_torch = torch_available()
    report: dict = {"suite_version": __version__, "seed": seed, "cases_per_format": cases,
                    "platform": f"{platform.machine()} {platform.python_implementation()} "
                                f"{platform.python_version()}",
                    "versions": {"numpy": np.__version__, "mpmath": mpmath.__version__},
                    "formats": {}}
    if has_torch:
        import torch

        report["versions"]["torch"] = torch.__version__
        report["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    for name in formats:
        passes = []
        base_impls = [i for i in ("manual", "numpy") if i != "manual" or name == "float64"]
        m = torch_cases.get(name, 0) if has_torch else 0
        plan = [("variants and implementations", cases, base_impls + (list(TORCH_IMPLS) if m >= cases else []),
                 True, None, "")]
        if 0 < m < cases:
            plan.append(("torch (default dispatch)", m, list(TORCH_IMPLS), False, None, ""))
        if m and name == "float32":
            plan.append(("torch with ATEN_CPU_CAPABILITY=default", m, list(TORCH_IMPLS), False,
                         {"ATEN_CPU_CAPABILITY": "default"}, "@ATEN_CPU_CAPABILITY=default"))
        merged: "Tally | None" = None
        info: dict = {}
        for label, n, impls, variants, env, suffix in plan:
            start = time.perf_counter()

            def progress(done, total, label=label):
                if stream.isatty() or done == total or done % max(1, total // 10) == 0:
                    end = "\n" if done == total or not stream.isatty() else "\r"
                    stream.write(f"{name}: {label}: {done}/{total} chunks, "
                                 f"{time.perf_counter() - start:.0f} s{end}")
                    stream.flush()

            out = run(name, n, seed=seed, workers=workers, impls=impls, variants=variants,
                      options=variants, compare=variants, env=env, suffix=suffix,
                      progress=progress)
            passes.append({"pass": label, "cases": out["cases"], "seconds": round(out["seconds"], 1)})
            t = _tally_from(out)
            if merged is None:
                merged, info = t, {"cases": out["cases"], "regimes": out["regimes"]}
            else:
                merged.stats.update({k: v for k, v in t.stats.items()})
                merged.errors += t.errors
        d = merged.as_dict()
        d.update(info)
        d["passes"] = passes
        report["formats"][name] = d
    return report
