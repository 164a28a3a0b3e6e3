"""Rendering a ``neuronspec check`` report: a terminal table (at most 100 columns) and
Markdown for a pull request.  The JSON form is the report dict itself (``spec/report.md``)."""

from __future__ import annotations

import textwrap

from reference.step import REQUIRED

__all__ = ["render_text", "render_markdown"]


def _f(x, digits=3) -> str:
    if isinstance(x, str):
        return x
    return f"{x:.{digits}g}"


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=100, initial_indent="   ", subsequent_indent="      ")


def render_text(report: dict) -> str:
    s = report["settings"]
    out = [f"neuronspec {report['suiteVersion']} check: model {s['model']}, "
           f"{s['examples']} hypothesis examples per format and {s['vectors']} vectors, "
           f"seed {s['seed']}",
           f"platform: {report['platform']}"]
    for impl in report["implementations"]:
        out += ["", f"== {impl['name']} ({impl['origin']}; {impl['version']}): "
                    f"{impl['verdict'].upper()}"]
        if impl["error"]:
            out.append(f"   stopped: {impl['error']}")
        for fmt, r in impl["formats"].items():
            if r["status"] == "unsupported":
                out.append(f"-- {fmt}: unsupported ({r['reason'][:70]})")
                continue
            out.append(textwrap.fill(f"-- {fmt}: {r['status']}, {r['cases']} cases "
                                     f"({r['vectorCases']} vectors)"
                                     + (f": {r['reason']}" if r["reason"] else ""),
                                     width=100, subsequent_indent="   "))
            out.append(f"   {'quantity':<8} {'checked':>8} {'no bound':>9} {'failed':>7} "
                       f"{'worst ulps':>11} {'worst err/bound':>16}")
            for q in REQUIRED:
                st = r["quantities"][q]
                out.append(f"   {q:<8} {st['checked']:>8} {st['outOfDomain']:>9} "
                           f"{st['failures']:>7} {_f(st['worstErrorUlps']):>11} "
                           f"{_f(st['worstErrorOverBound']):>16}")
            for prop, n in r["propertyFailures"].items():
                out.append(f"   property {prop}: {n} failing cases")
            for g, fp in r["fingerprint"].items():
                out.append(_wrap(f"fingerprint {g}: {fp['words']}"))
            for words in r["behaviourOutsideModel"]:
                out.append(_wrap(f"outside the model: {words}"))
            for fail in r["failures"][:3]:
                out.append("   " + fail["message"].replace("\n", "\n   "))
    out += ["", f"verdict: {'CONFORMANT' if report['conformant'] else 'NON-CONFORMANT'} "
                f"({report['seconds']} s)"]
    return "\n".join(out)


def render_markdown(report: dict) -> str:
    s = report["settings"]
    out = [f"## neuronspec check: {'conformant' if report['conformant'] else 'non-conformant'}",
           "", f"Suite {report['suiteVersion']}, model `{s['model']}`, {s['examples']} hypothesis "
           f"examples per format and {s['vectors']} vectors, seed {s['seed']}; "
           f"{report['platform']}.", ""]
    for impl in report["implementations"]:
        out += [f"### {impl['name']}: {impl['verdict']}", "",
                f"`{impl['origin']}` ({impl['version']})", ""]
        if impl["error"]:
            out += [f"Stopped: {impl['error']}", ""]
        out += ["| format | status | cases | quantity | checked | no bound | failed | "
                "worst ulps | worst err/bound |", "|---|---|---|---|---|---|---|---|---|"]
        for fmt, r in impl["formats"].items():
            if r["status"] == "unsupported":
                out.append(f"| {fmt} | unsupported | | | | | | | |")
                continue
            for i, q in enumerate(REQUIRED):
                st = r["quantities"][q]
                lead = f"| {fmt} | {r['status']} | {r['cases']} " if i == 0 else "| | | "
                out.append(f"{lead}| {q} | {st['checked']} | {st['outOfDomain']} | "
                           f"{st['failures']} | {_f(st['worstErrorUlps'])} | "
                           f"{_f(st['worstErrorOverBound'])} |")
        out.append("")
        for fmt, r in impl["formats"].items():
            if r["status"] == "unsupported":
                continue
            lines = [f"- **{g}**: {fp['words']}" for g, fp in r["fingerprint"].items()]
            lines += [f"- **outside the model**: {w}" for w in r["behaviourOutsideModel"]]
            if lines:
                out += [f"Fingerprint, {fmt}:", ""] + lines + [""]
            for fail in r["failures"][:3]:
                out += [f"<details><summary>{fmt}: {fail['property']} failed on "
                        f"{fail['quantity'] or 'a case'}</summary>", "", "```",
                        fail["message"], "```", "</details>", ""]
    return "\n".join(out) + "\n"
