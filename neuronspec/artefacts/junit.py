"""JUnit XML of a ``neuronspec check`` report: the form CI systems show natively (GitHub Actions
test reporters, GitLab, Jenkins).  One ``<testsuite>`` per implementation; one ``<testcase>``
per format and quantity (classname ``neuronspec.<impl>.<format>``, name the quantity), failed
where the quantity failed at the level that sets the status, skipped where the format was not
checked; and, per format, a testcase ``step`` for what failed on no single quantity (a property
of a whole case, behaviour outside the model; an error where the run stopped there)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from reference.step import REQUIRED

from .report import Outcome, outcomes

__all__ = ["render_junit", "xml_text"]

#: Characters XML 1.0 cannot carry, even escaped (C0 controls but tab and line breaks,
#: surrogates, U+FFFE, U+FFFF).
_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

#: Failure messages on one testcase, the rest being in the report.
SHOWN = 3


def xml_text(value: object) -> str:
    """``value`` as text XML 1.0 can carry: a character it forbids is written as its Python
    escape (``\\x1b``)."""
    return _ILLEGAL.sub(lambda m: ascii(m.group())[1:-1], str(value))


def _line(text: object, most: int = 300) -> str:
    """One line of at most ``most`` characters."""
    one = " ".join(xml_text(text).split())
    return one if len(one) <= most else one[:most - 3] + "..."


def _add(parent: ET.Element, tag: str, text: "str | None" = None, **attrs: object) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        el.text = xml_text(text)
    return el


def _texts(messages: "list[str]", extra: "list[str] | None" = None) -> str:
    shown = messages[:SHOWN]
    more = len(messages) - len(shown)
    return "\n\n".join((extra or []) + shown
                       + ([f"... {more} more in the report (--json)"] if more else []))


def _quantity_case(suite: ET.Element, o: Outcome, q: str, classname: str) -> str:
    """The testcase of quantity ``q``; returns what it is: passed, failure or skipped."""
    case = _add(suite, "testcase", classname=classname, name=q, time="0")
    if not o.checked:
        _add(case, "skipped", message=_line(o.reason if o.status == "not reached"
                                            else f"{o.status}: {o.reason}"))
        return "skipped"
    st = o.impl["formats"][o.fmt]["quantities"][q]
    if not o.failing(q):
        if st["checked"] == 0 and st["outOfDomain"] == 0:
            _add(case, "skipped", message=f"no value of {q} was checked in {o.fmt}")
            return "skipped"
        return "passed"
    n, u, ratio = o.failures[q], o.unexplained[q], o.error_over_bound(q)
    words = ([f"{n:,} failures at the bounded level"] if n else []) \
        + ([f"{u:,} values no admitted evaluation gives (exact level)"] if u else []) \
        + ([f"error/bound {ratio:.3g}"] if ratio else [])
    messages = o.messages.get(q, [])
    first = messages[0].splitlines()[0] if messages else ""
    text = _texts(messages) or (f"the report keeps the first failures of each format; none of "
                                f"them is on {q}")
    _add(case, "failure", text, message=_line(f"{q}: {', '.join(words)}"
                                              + (f": {first}" if first else "")),
         type="bounded level" if n else "exact level")
    return "failure"


def _step_case(suite: ET.Element, o: Outcome, classname: str) -> str:
    """The testcase ``step`` of a format where something failed on no single quantity or the
    run stopped; returns failure or error (or "" where there is none)."""
    if not (o.step_failed or o.stopped or o.interrupted):
        return ""
    case = _add(suite, "testcase", classname=classname, name="step", time="0")
    extra = [f"outside the model: {w}" for w in o.outside]
    if o.unfound:
        extra.append(f"non-conformant: {o.reason}")
    if o.stopped or o.interrupted:
        why = o.stopped or (f"interrupted by {o.interrupted}: what was checked before is "
                            "reported; the formats after this one were not checked")
        _add(case, "error", _texts(o.messages.get(None, []), [why] + extra),
             message=_line(why), type="stopped" if o.stopped else "interrupted")
        return "error"
    messages = o.messages.get(None, [])
    first = (messages[0].splitlines()[0] if messages else o.outside[0] if o.outside
             else o.reason)
    if o.case_failures and not messages:
        first = "a property failed on a whole case, not on one quantity"
        counts = o.impl["formats"][o.fmt].get("propertyFailures", {})
        extra.append("the report keeps the first failures of each format; none of them is on "
                     "a whole case.  Failures per property in this format (quantities "
                     "included): " + ", ".join(f"{p} {n:,}" for p, n in counts.items()))
    _add(case, "failure", _texts(messages, extra),
         message=_line("; ".join(o.step_words()) + (f": {first}" if first else "")),
         type="whole case" if o.case_failures else "outside the model")
    return "failure"


def _properties(suite: ET.Element, report: dict, impl: dict) -> None:
    props = _add(suite, "properties")
    s = report["settings"]
    values = {"suiteVersion": report.get("suiteVersion"),
              "reportVersion": report.get("reportVersion"),
              "platform": report.get("platform"), "model": s.get("model"),
              "level": s.get("level", "bounded"), "seed": s.get("seed"),
              "examples": s.get("examples"), "sweep": s.get("sweep"),
              "vectors": s.get("vectors"), "formats": ",".join(s.get("formats", [])),
              "verdict": impl.get("verdict"), "origin": impl.get("origin"),
              "version": impl.get("version"), "error": impl.get("error"),
              "interrupted": report.get("interrupted")}
    for fmt, r in impl["formats"].items():
        levels = r.get("levels") or {}
        values[f"{fmt}.status"] = r["status"] + "".join(
            f", {level} level: {status}" for level, status in levels.items())
        values[f"{fmt}.reason"] = r.get("reason")
        for group, fp in (r.get("fingerprint") or {}).items():
            values[f"{fmt}.fingerprint.{group}"] = fp.get("words")
        values[f"{fmt}.outsideModel"] = "; ".join(r.get("behaviourOutsideModel") or [])
    for name, value in values.items():
        if value not in (None, ""):
            _add(props, "property", name=name, value=_line(value, 1000))


def _counts(el: ET.Element, tally: "dict[str, int]") -> None:
    for name in ("tests", "failures", "errors", "skipped"):
        el.set(name, str(tally[name]))


def render_junit(report: dict) -> str:
    """The report as JUnit XML (UTF-8, with its declaration)."""
    root = ET.Element("testsuites", {"name": "neuronspec check"})
    total = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    suites: dict = {}
    single = len(report["implementations"]) == 1
    for o in outcomes(report):
        key = id(o.impl)
        if key not in suites:
            suite = _add(root, "testsuite", name=_line(o.impl["name"]),
                         time=report.get("seconds", 0) if single else 0)
            _properties(suite, report, o.impl)
            suites[key] = (suite, dict.fromkeys(total, 0))
        suite, tally = suites[key]
        name = re.sub(r"[\s.]+", "_", _line(o.impl["name"], 100))
        classname = f"neuronspec.{name}.{o.fmt}"
        quantities = list(o.impl["formats"].get(o.fmt, {}).get("quantities") or REQUIRED)
        kinds = [_quantity_case(suite, o, q, classname) for q in quantities]
        kinds.append(_step_case(suite, o, classname))
        for kind in filter(None, kinds):
            tally["tests"] += 1
            plural = {"failure": "failures", "error": "errors", "skipped": "skipped"}
            if kind in plural:
                tally[plural[kind]] += 1
    for entry in report.get("runs", []):  # --run: a testcase per format, option set, quantity
        suite = _add(root, "testsuite", name=_line(f"{entry['implementation']} runs"), time=0)
        tally = dict.fromkeys(total, 0)
        name = re.sub(r"[\s.]+", "_", _line(entry["implementation"], 100))
        for r in entry["results"]:
            classname = f"neuronspec.{name}.runs.{r['format']}.{_line(r['options'], 100)}"
            for q, figures in r["quantities"].items():
                tally["tests"] += 1
                case = _add(suite, "testcase", classname=classname, name=q, time="0")
                failures = [f for f in r["failures"] if f["quantity"] == q]
                if r["unsupported"]:
                    tally["skipped"] += 1
                    _add(case, "skipped", message=_line(r["unsupported"]))
                elif figures["failed"] or failures:
                    tally["failures"] += 1
                    _add(case, "failure", _texts([f"step {f['step']}: {f['why']}; replay: "
                                                  f"{f['replay']}" for f in failures]),
                         message=_line(f"{figures['failed']} values outside their bound"))
            other = [f for f in r["failures"] if f["quantity"] not in r["quantities"]]
            if other:  # a failure of a step as a whole (an exception, a missing step, ...)
                tally["tests"] += 1
                tally["failures"] += 1
                case = _add(suite, "testcase", classname=classname, name="step", time="0")
                _add(case, "failure", _texts([f"step {f['step']}: {f['why']}; replay: "
                                              f"{f['replay']}" for f in other]),
                     message=_line(other[0]["why"]))
        suites[id(entry)] = (suite, tally)
    for suite, tally in suites.values():
        _counts(suite, tally)
        for k in total:
            total[k] += tally[k]
    _counts(root, total)
    root.set("time", str(report.get("seconds", 0)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"
