"""Language-neutral test vectors (Wycheproof-shaped) and the verification of any program's
results against them.

``spec/vectors/<format>.json`` holds, per case: a stable ``tcId``, a comment, flags with
written reasons, the inputs in hex and exact decimal, and per quantity the exact value, the
correctly rounded value and the ``ieee`` bound (or the reason it is outside the bounded domain).
Edge cases come first (ids 1-999, append-only); fixed-seed random cases from every regime follow
(ids from 1000).  ``neuronspec vectors`` regenerates the files; a test fails when they are stale.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np

from . import __version__
from .bounds import IEEE, OutOfDomain, case_bounds
from .exact import QUANTITIES, exact_step
from .formats import FORMATS, Format, float_hex, parse_hex, to_fraction
from .regimes import REGIMES, regime_cases
from .rounded import VARIANTS, evaluate_variants, fl_add, fl_mul
from .seed import SEED_LITERALS, exact_decimal

__all__ = ["FLAGS", "SCHEMA", "VECTOR_DIR", "SCHEMA_PATH", "generate", "write", "load", "verify", "stale",
           "exact_hex", "VERIFY_KEYS"]

VECTOR_DIR = Path("spec/vectors")
SCHEMA_PATH = VECTOR_DIR / "schema.json"
RANDOM_SEED = 20261126
RANDOM_PER_REGIME = 40
VERIFY_KEYS = ("y", "loss", "dL_dw", "dL_db", "w_new", "b_new")

FLAGS: dict[str, str] = {
    "SeedExample": "The seed notebook's inputs (w=0.5, b=-0.1, x=2, t=1, lr=0.1) rounded to the "
                   "format.",
    "SignedZero": "Inputs or results are zeros of either sign: the sign of an exact zero result "
                  "follows IEEE 754 rules; the bound treats both zeros alike.",
    "LrZero": "lr = 0: the update must return w and b unchanged.",
    "LrTiny": "lr is tiny: the update rounds back to (or next to) the old parameters.",
    "Overshoot": "lr*(x^2+1) is 1 or 2: the step lands on the minimum or jumps across it.",
    "Cancellation": "y is within a few ulps of t: r is tiny and its error is absolute (of the "
                    "size of the rounding error of y), so relative tolerances fail here.",
    "CancellationWxB": "b is close to -w*x: y is tiny relative to w*x and b.",
    "Subnormal": "Inputs, products or results in the subnormal range: gradual underflow is "
                 "required (flush-to-zero fails these).",
    "ExactProduct": "w*x is exactly representable: a correct implementation makes no error "
                    "there, so the bound is at its tightest.",
    "TieToEven": "w*x lies exactly halfway between two values of the format: round half to even.",
    "FmaSensitive": "A fused multiply-add gives a different (equally legal) result than two "
                    "roundings in the forward pass.",
    "FmaSensitiveUpdate": "A fused update gives a different (equally legal) result than two "
                          "roundings.",
    "OverflowAdjacent": "Magnitudes close to the largest finite value, still inside the "
                        "bounded domain.",
    "OutOfDomain": "Some quantity may overflow in an admitted evaluation: it has no bound and is "
                   "not checked (the implementation may return inf, nan, a number, or fail).",
    "Random": "A fixed-seed random case from the named regime.",
}


def exact_hex(q) -> str:
    """The exact hex spelling of a dyadic rational (any number of digits): '0x1.8p-3'."""
    q = to_fraction(q)
    if q == 0:
        return "0x0p+0"
    sign = "-" if q < 0 else ""
    n, d = abs(q.numerator), q.denominator
    e = -(d.bit_length() - 1)  # value = n * 2**e
    top = n.bit_length() - 1
    frac_bits = top
    # normalise to 1.xxx p(top + e), padding the fraction to whole hex digits
    pad = (-frac_bits) % 4
    digits = format((n - (1 << top)) << pad, "x").rjust((frac_bits + pad) // 4, "0") if top else ""
    digits = digits.rstrip("0")
    exp = top + e
    return f"{sign}0x1{'.' + digits if digits else ''}p{'+' if exp >= 0 else '-'}{abs(exp)}"


def _edge_cases(fmt: Format) -> list[tuple[str, list[str], tuple]]:
    """(comment, flags, case) of the edge-case catalogue; append only (ids are positions)."""
    P = fmt.parse
    tiny, small, big = fmt.smallest_subnormal, fmt.smallest_normal, fmt.largest_finite
    seed = tuple(P(SEED_LITERALS[k]) for k in ("w", "b", "x", "t", "lr"))
    out: list[tuple[str, list[str], tuple]] = [
        ("the seed example", ["SeedExample"], seed),
        ("all inputs zero", ["SignedZero", "LrZero"], (0.0, 0.0, 0.0, 0.0, 0.0)),
        ("negative zeros: y = -0, r = +0", ["SignedZero"], (-0.0, -0.0, 1.0, -0.0, 1.0)),
        ("lr = 0 leaves w and b unchanged", ["LrZero"], (seed[0], seed[1], seed[2], seed[3], 0.0)),
        ("t = fl(w*x + b) exactly: r = 0", ["Cancellation"],
         (seed[0], seed[1], seed[2], fl_add(fmt, fl_mul(fmt, seed[0], seed[2]), seed[1]), seed[4])),
        ("t one ulp above fl(w*x + b)", ["Cancellation"],
         (P("1.5"), P("-0.1"), P("0.7"), fmt.next_up(fl_add(fmt, fl_mul(fmt, P("1.5"), P("0.7")),
                                                          P("-0.1"))), P("0.25"))),
        ("b = -w*x exactly: y = 0", ["CancellationWxB", "ExactProduct"],
         (P("1.5"), P("-3"), P("2"), P("0.25"), P("0.125"))),
        ("b one ulp from -fl(w*x)", ["CancellationWxB"],
         (P("1.1"), fmt.next_up(-fl_mul(fmt, P("1.1"), P("1.3"))), P("1.3"), P("0.5"), P("0.5"))),
        ("smallest subnormal inputs", ["Subnormal"], (tiny, tiny, tiny, -tiny, tiny)),
        ("w*x underflows to the subnormal range", ["Subnormal"],
         (fmt.round(math.sqrt(small) * 0.75), 0.0, fmt.round(math.sqrt(small) * 0.5), 0.0,
          P("0.5"))),
        ("r subnormal: b and t straddle zero by a subnormal", ["Subnormal"],
         (0.0, 3 * tiny, P("1"), -2 * tiny, P("1"))),
        ("w*x exactly halfway between two values: ties to even", ["TieToEven"],
         (fmt.next_up(1.0), fmt.next_up(1.0), P("1"), P("0"), P("0.5"))),
        ("exactly representable product", ["ExactProduct"], (P("0.5"), P("0.25"), P("2"), P("1"), P("0.5"))),
        ("lr*(x^2+1) = 2: the loss is unchanged", ["Overshoot", "ExactProduct"],
         (P("0.5"), P("0.25"), P("1"), P("2"), P("1"))),
        ("lr*(x^2+1) = 1: the step lands on the minimum", ["Overshoot", "ExactProduct"],
         (P("0.5"), P("0.25"), P("1"), P("2"), P("0.5"))),
        ("tiny lr: the update rounds back", ["LrTiny"], (P("0.75"), P("-0.5"), P("1.5"), P("1"), tiny)),
        ("w*x near the largest finite value, inside the domain", ["OverflowAdjacent"],
         (fmt.round(math.sqrt(big) * 0.9), -fmt.round(big * 0.5), fmt.round(math.sqrt(big) * 0.9),
          -fmt.round(big * 0.25), 0.0)),
        ("w*x overflows: out of the bounded domain", ["OutOfDomain"], (big, 0.0, P("2"), 0.0, P("0.5"))),
        ("the loss overflows, y and the gradients do not", ["OutOfDomain"],
         (0.0, fmt.round(big * 0.25), P("1"), -fmt.round(big * 0.125), 0.0)),
    ]
    out += _fma_sensitive(fmt)
    return out


def _fma_sensitive(fmt: Format) -> list[tuple[str, list[str], tuple]]:
    """The first fixed-seed cases where fused and two-rounding evaluations differ."""
    rng = np.random.default_rng(7)
    found: dict[str, tuple] = {}
    names = {"fused-forward": ("y", "FmaSensitive"), "fused-update": ("w_new", "FmaSensitiveUpdate")}
    for case in regime_cases(fmt, "cancel-wx-b", rng, 400) + regime_cases(fmt, "lr-range", rng, 400):
        res = evaluate_variants(fmt, *case, [VARIANTS["canonical"], VARIANTS["fused-forward"],
                                             VARIANTS["fused-update"]])
        bounds = case_bounds(fmt, dict(zip("w b x t lr".split(), case)))
        for variant, (q, flag) in names.items():
            if variant in found or isinstance(bounds[q], OutOfDomain):
                continue
            if res[variant][q] != res["canonical"][q]:
                found[variant] = case
        if len(found) == len(names):
            break
    return [(f"{v}: {names[v][0]} differs from two roundings", [names[v][1]], c)
            for v, c in found.items()]


def _random_cases(fmt: Format) -> list[tuple[str, list[str], tuple]]:
    out = []
    for i, regime in enumerate(REGIMES):
        rng = np.random.default_rng([RANDOM_SEED, fmt.p, i])
        for case in regime_cases(fmt, regime, rng, RANDOM_PER_REGIME):
            out.append((f"random, regime {regime}", ["Random"], case))
    return out


def _test(fmt: Format, tc_id: int, comment: str, flags: list[str], case: tuple) -> dict:
    inputs = dict(zip(("w", "b", "x", "t", "lr"), case))
    exact = exact_step(*case).as_fractions()
    bounds = case_bounds(fmt, inputs, IEEE)
    expected = {}
    flags = list(flags)
    for q in QUANTITIES:
        e = exact[q]
        entry = {"exact": exact_decimal(e, 100000), "exactHex": exact_hex(e),
                 "rounded": float_hex(fmt.round(e))}
        b = bounds[q]
        if isinstance(b, OutOfDomain):
            entry["outOfDomain"] = b.reason
            if "OutOfDomain" not in flags:
                flags.append("OutOfDomain")
        else:
            entry["bound"] = exact_hex(Fraction(b))
            entry["boundUlps"] = round(float(Fraction(b) / fmt.ulp(e)), 6)
        expected[q] = entry
    if any(v != 0.0 and abs(v) < fmt.smallest_normal for v in case) and "Subnormal" not in flags:
        flags.append("Subnormal")
    return {"tcId": tc_id, "comment": comment, "flags": flags,
            "inputs": {k: {"hex": float_hex(v), "decimal": exact_decimal(v, 100000)}
                       for k, v in inputs.items()},
            "expected": expected}


def generate(fmt_name: str) -> dict:
    """The vector file of one format (deterministic)."""
    fmt = FORMATS[fmt_name]
    tests = [_test(fmt, i + 1, c, f, case) for i, (c, f, case) in enumerate(_edge_cases(fmt))]
    tests += [_test(fmt, 1000 + i, c, f, case) for i, (c, f, case) in enumerate(_random_cases(fmt))]
    used = sorted({f for t in tests for f in t["flags"]})
    return {
        "algorithm": "neuronspec: one SGD step of y = w*x + b, L = (y - t)^2 / 2",
        "generatedBy": "neuronspec vectors",
        "generatorVersion": __version__,
        "schema": "schema.json",
        "format": fmt_name,
        "precision": fmt.p, "emin": fmt.emin, "emax": fmt.emax,
        "model": IEEE.name,
        "numberOfTests": len(tests),
        "notes": {f: FLAGS[f] for f in used},
        "header": ["Each quantity's 'exact' value is the exact result on the binary inputs (a "
                   "finite decimal); 'rounded' is it correctly rounded to the format; 'bound' is "
                   "an upper bound on |computed - exact| for every evaluation the ieee model "
                   "admits (spec/tolerances.md). A result conforms when it is a value of the "
                   "format and |computed - exact| <= bound. Quantities with 'outOfDomain' are "
                   "not checked."],
        "testGroups": [{"format": fmt_name, "tests": tests}],
    }


def _dump(data: dict) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def write(directory: Path = VECTOR_DIR, formats: Iterable[str] = FORMATS) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in formats:
        path = directory / f"{name}.json"
        path.write_text(_dump(generate(name)))
        paths.append(path)
    (directory / "schema.json").write_text(_dump(SCHEMA))
    return paths


def stale(directory: Path = VECTOR_DIR, formats: Iterable[str] = FORMATS) -> list[str]:
    """Files that differ from what ``write`` would produce."""
    out = []
    for name in formats:
        path = directory / f"{name}.json"
        if not path.exists() or path.read_text() != _dump(generate(name)):
            out.append(str(path))
    schema = directory / "schema.json"
    if not schema.exists() or schema.read_text() != _dump(SCHEMA):
        out.append(str(schema))
    return out


def load(directory: Path = VECTOR_DIR) -> dict[str, dict]:
    """format -> {tcId -> test} for every vector file in ``directory``."""
    out = {}
    for name in FORMATS:
        path = directory / f"{name}.json"
        if path.exists():
            data = json.loads(path.read_text())
            out[name] = {t["tcId"]: t for g in data["testGroups"] for t in g["tests"]}
    if not out:
        raise FileNotFoundError(f"no vector files in {directory}; run `neuronspec vectors`")
    return out


def _value(text, fmt: Format) -> "float | str":
    """A result value as a float of the format, or a string saying why it is not one."""
    if not isinstance(text, str):
        return f"{text!r} is not a string"
    s = text.strip().lower()
    if s.lstrip("+-") in ("inf", "infinity", "nan"):
        return float(s)
    try:
        q = parse_hex(text) if "0x" in s else Fraction(text)
    except (ValueError, ZeroDivisionError):
        return f"{text!r} is not a hex or decimal number"
    r = fmt.round(q)
    if not math.isfinite(r) or Fraction(r) != q:
        return f"{text!r} is not a {fmt.name} value"
    return -0.0 if r == 0 and s.startswith("-") else r


def verify(results: list[dict], vectors: dict[str, dict]) -> dict:
    """Check results ({format, tcId, outputs}) against the vectors; a summary with failures."""
    summary = {"checked": 0, "passed": 0, "failed": 0, "unknown": 0, "failures": []}
    seen = set()
    for r in results:
        fmt_name, tc = r.get("format"), r.get("tcId")
        test = vectors.get(fmt_name, {}).get(tc)
        if test is None:
            summary["unknown"] += 1
            summary["failures"].append({"format": fmt_name, "tcId": tc,
                                        "reason": "no such test (check format and tcId)"})
            continue
        seen.add((fmt_name, tc))
        fmt = FORMATS[fmt_name]
        outputs = r.get("outputs") or {}
        ood = any("outOfDomain" in test["expected"][q] for q in VERIFY_KEYS)
        if "error" in r and ood:  # failing where a quantity may overflow is allowed
            summary["checked"] += 1
            summary["passed"] += 1
            continue
        reasons = [f"the program reported an error: {r['error']}"] if "error" in r else []
        for q in VERIFY_KEYS:
            exp = test["expected"][q]
            if "outOfDomain" in exp:
                continue
            if q not in outputs:
                reasons.append(f"{q} missing")
                continue
            v = _value(outputs[q], fmt)
            if isinstance(v, str):
                reasons.append(f"{q}: {v}")
                continue
            exact = parse_hex(exp["exactHex"])
            bound = parse_hex(exp["bound"])
            if not math.isfinite(v) or abs(Fraction(v) - exact) > bound:
                if not math.isfinite(v) or bound == 0:
                    times = "inf"
                else:
                    r = abs(Fraction(v) - exact) / bound
                    times = f"{float(r):.3g}" if r < Fraction(10) ** 300 else "> 1e300"
                reasons.append(f"{q} = {outputs[q]} is off by {times} times its bound "
                               f"(exact {exp['exact'][:40]})")
        summary["checked"] += 1
        if reasons:
            summary["failed"] += 1
            summary["failures"].append({"format": fmt_name, "tcId": tc,
                                        "comment": test["comment"], "reason": "; ".join(reasons)})
        else:
            summary["passed"] += 1
    summary["notRun"] = sum(len(v) for v in vectors.values()) - len(seen)
    return summary


def run_implementation(impl, vectors: dict[str, dict], formats: Iterable[str]) -> list[dict]:
    """An implementation's results on the vectors, in the verify format."""
    from .impls import ImplementationError

    out = []
    for fmt_name in formats:
        for tc, test in vectors.get(fmt_name, {}).items():
            case = tuple(float.fromhex(test["inputs"][k]["hex"]) for k in ("w", "b", "x", "t", "lr"))
            try:
                res = impl(fmt_name, case)
            except NotImplementedError:
                break
            except ImplementationError as exc:
                out.append({"format": fmt_name, "tcId": tc, "error": str(exc)})
                continue
            out.append({"format": fmt_name, "tcId": tc,
                        "outputs": {q: float_hex(v) for q, v in res.items()}})
    return out


_QUANTITY_ENTRY = {
    "type": "object",
    "required": ["exact", "exactHex", "rounded"],
    "properties": {
        "exact": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?(e[+-][0-9]+)?$",
                  "description": "the exact value, as a finite decimal"},
        "exactHex": {"type": "string", "pattern": "^-?0x[01](\\.[0-9a-f]+)?p[+-][0-9]+$"},
        "rounded": {"type": "string", "description": "the exact value correctly rounded"},
        "bound": {"type": "string", "pattern": "^0x[01](\\.[0-9a-f]+)?p[+-][0-9]+$",
                  "description": "upper bound on |computed - exact| (ieee model), exact hex"},
        "boundUlps": {"type": "number", "minimum": 0},
        "outOfDomain": {"type": "string", "minLength": 1},
    },
    "oneOf": [{"required": ["bound", "boundUlps"]}, {"required": ["outOfDomain"]}],
    "additionalProperties": False,
}

_VALUE = {"type": "object", "required": ["hex", "decimal"], "additionalProperties": False,
          "properties": {"hex": {"type": "string", "pattern": "^-?0x[01](\\.[0-9a-f]+)?p[+-][0-9]+$"},
                         "decimal": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?(e[+-][0-9]+)?$"}}}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://neuronspec/spec/vectors/schema.json",
    "title": "neuronspec test vectors for one SGD step of a single neuron",
    "type": "object",
    "required": ["algorithm", "generatedBy", "generatorVersion", "format", "precision", "emin",
                 "emax", "model", "numberOfTests", "notes", "testGroups"],
    "properties": {
        "algorithm": {"type": "string"}, "generatedBy": {"type": "string"},
        "generatorVersion": {"type": "string"}, "schema": {"type": "string"},
        "format": {"enum": list(FORMATS)}, "precision": {"type": "integer"},
        "emin": {"type": "integer"}, "emax": {"type": "integer"}, "model": {"type": "string"},
        "numberOfTests": {"type": "integer", "minimum": 1},
        "notes": {"type": "object", "additionalProperties": {"type": "string", "minLength": 10}},
        "header": {"type": "array", "items": {"type": "string"}},
        "testGroups": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["format", "tests"],
            "properties": {"format": {"enum": list(FORMATS)}, "tests": {"type": "array", "items": {
                "type": "object", "required": ["tcId", "comment", "flags", "inputs", "expected"],
                "additionalProperties": False,
                "properties": {
                    "tcId": {"type": "integer", "minimum": 1},
                    "comment": {"type": "string"},
                    "flags": {"type": "array", "items": {"enum": list(FLAGS)}, "uniqueItems": True},
                    "inputs": {"type": "object", "required": ["w", "b", "x", "t", "lr"],
                               "additionalProperties": False,
                               "properties": {k: _VALUE for k in ("w", "b", "x", "t", "lr")}},
                    "expected": {"type": "object", "required": list(QUANTITIES),
                                 "additionalProperties": False,
                                 "properties": {q: _QUANTITY_ENTRY for q in QUANTITIES}},
                }}}}}},
    },
    "additionalProperties": False,
}
