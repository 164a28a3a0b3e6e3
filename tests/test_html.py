"""The HTML report (``neuronspec check --html FILE``): rendered from a small fixture report and
loaded in a real headless Chromium, driven over the DevTools protocol through a pipe
(``--remote-debugging-pipe``: fds 3 and 4, JSON messages ended by a NUL byte; stdlib only).

The browser tests skip when Chromium is missing, unless CI is set: there they fail, since a
test that cannot run in CI must not pass silently.

Run as a script, this file regenerates the README's screenshot::

    PYTHONPATH=. python tests/test_html.py docs/html-report.png
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import html
import json
import math
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import pytest

from reference.step import INPUTS, REQUIRED
from neuronspec.artefacts.html import render_html
from neuronspec.artefacts.peers import PEER_TOLERANCES
from neuronspec.artefacts.plots import png_text
from neuronspec.artefacts.report import LEGEND
from neuronspec.data import validate

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 30.0
PEER = "torch.testing.assert_close"
EVIL = "<script>alert(1)</script>"
EVIL_IMG = "<img src=x onerror=alert(2)>"


# ---- a plausible report ------------------------------------------------------------------------

def plausible_points(fmt: str, n: int, seed: int) -> list[list]:
    """[kappa, error/bound, error/peer tolerance] as a real run gives them: kappa mostly small,
    some huge (cancellation), some infinite (exact value 0); a fifth of the errors 0."""
    rng = random.Random(seed)
    u = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float32": 2.0 ** -24}.get(fmt, 2.0 ** -53)
    rtol, atol = PEER_TOLERANCES[PEER][fmt]
    out: list[list] = []
    for _ in range(n):
        exact = 10 ** rng.uniform(-4, 4)
        kappa = math.inf if rng.random() < 0.03 else 10 ** (10 * rng.random() ** 2)
        scale = exact * (kappa if kappa < math.inf else 10 ** rng.uniform(0, 4))
        bound = 3 * u * scale
        error = 0.0 if rng.random() < 0.2 else bound * rng.random() * 10 ** -rng.uniform(0, 2)
        tolerance = atol + rtol * (0 if kappa == math.inf else exact)
        out.append(["inf" if kappa == math.inf else kappa, error / bound, error / tolerance])
    return out


def _plot(fmt: str, n: int, seed: int) -> dict:
    rtol, atol = PEER_TOLERANCES[PEER][fmt]
    return {"peer": PEER, "peerTolerance": {"rtol": rtol, "atol": atol},
            "points": {q: plausible_points(fmt, n, seed + i) for i, q in enumerate(REQUIRED)}}


def _quantities(failing: "str | None" = None) -> dict:
    out = {}
    for i, q in enumerate(REQUIRED):
        why = {"w*x may overflow": i, "r*r may overflow": 1} if i > 1 else {}
        st = {"checked": 3400 - i, "outOfDomain": sum(why.values()), "outOfDomainWhy": why,
              "failures": 0, "worstErrorOverBound": 0.9 + i / 100,
              "worstIsCorrectlyRounded": [True, False, None][i % 3],
              "worstEvaluation": "canonical" if i % 3 < 2 else None,
              "worstUlpsOfScale": 0.5 + i / 10, "ulpsOfScaleValues": 380 - i,
              "caseByCase": 400, "correctlyRounded": 300 + i, "explained": 3400 - i,
              "unexplained": 0, "explainedBy": {"canonical": 3400 - i}}
        if q == failing:
            st.update(failures=3, unexplained=4, explained=3396 - i, worstErrorOverBound=4.69,
                      worstIsCorrectlyRounded=False, worstEvaluation=None)
        out[q] = st
    return out


def fixture_report(name: str = "numpy", n: int = 300, evil: str = "") -> dict:
    """A report as ``neuronspec check --json`` writes it (spec/report.md; valid against its
    schema): float16 non-conformant (failures, sweep findings, a declined case), float32
    conformant, both with a plot of ``n`` points per quantity, bfloat16 unsupported, float64
    conformant without a plot.  ``evil`` goes into every text the implementation gives."""
    evil = f" {evil}" if evil else ""
    replay = (f"neuronspec replay {name}:step --dtype float16 "
              "--case=0x0p+0,0x1p+0,0x1.2fp+3,0x1p-1,0x1p-24")
    message = (f"within-bounds failed: {name} in float16, lr-extremes case: w_new is outside its "
               f"bound{evil}\n   w = 0x0p+0  = 0.0\n  error/bound = 4.69\n  replay: {replay}")
    fingerprint = {"forward": {"cases": 80, "matchedA": 80, "matchedB": 0, "A": "canonical",
                               "B": "fused-forward",
                               "words": "two roundings fl(fl(w*x)+b) (80/80 cases)"},
                   "learning rate": {"words": "a binary64 lr is rounded to the format"}}

    def fmt_entry(fmt, status, quantities, **extra):
        return dict({"format": fmt, "status": status, "reason": "",
                     "levels": {"bounded": status, "exact": status}, "cases": 430,
                     "vectorCases": 381, "unexplained": 0, "declined": {}, "sweep": {},
                     "quantities": quantities, "propertyFailures": {}, "failures": [],
                     "fingerprint": fingerprint, "behaviourOutsideModel": []}, **extra)

    formats = {
        "float16": fmt_entry(
            "float16", "non-conformant", _quantities(failing="w_new"),
            reason=f"the sweep phase found 57 failures in 3,000 cases{evil}", unexplained=4,
            declined={f"a negative learning rate{evil}": 2},
            propertyFailures={"within-bounds": 1},
            failures=[{"property": "within-bounds", "quantity": "w_new", "regime": "lr-extremes",
                       "inputs": dict(zip(INPUTS, replay.split("=")[-1].split(","))),
                       "detail": "w_new is outside its bound", "errorOverBound": 4.69,
                       "message": message, "replay": replay}],
            sweep={"cases": 3000, "path": "compiled", "violations": 57, "unexplained": 92,
                   "failed": 0, "declined": {}, "seconds": 0.64,
                   "findings": [{"quantity": "w_new", "why": f"outside its bound{evil}",
                                 "errorOverBound": 923.0, "replay": replay}]},
            behaviourOutsideModel=[f"reads a subnormal learning rate as zero{evil}"],
            plot=_plot("float16", n, 16)),
        "float32": fmt_entry("float32", "conformant", _quantities(),
                             plot=_plot("float32", n, 32)),
        "bfloat16": dict(fmt_entry("bfloat16", "unsupported", {}, cases=0, vectorCases=0,
                                   reason=f"NotImplementedError: no bfloat16 here{evil}",
                                   fingerprint={}), levels={}),
        "float64": fmt_entry("float64", "conformant", _quantities()),
    }
    return {"reportVersion": 2, "suiteVersion": "0.1.0",
            "platform": "Linux x86_64, CPython 3.11.7",
            "settings": {"model": "ieee", "level": "exact", "examples": 50, "seed": 0,
                         "sweep": 3000, "formats": list(formats), "vectors": 381},
            "seconds": 1.9, "verdict": "non-conformant", "conformant": False,
            "implementations": [{"name": name,
                                 "origin": f"neuronspec.implementations.bundled.numpy{evil}",
                                 "version": f"numpy 2.4.6{evil}", "verdict": "non-conformant",
                                 "error": "", "formats": formats}]}


PLOTTED = 2  # the fixture's formats with a plot


# ---- without a browser -------------------------------------------------------------------------

def test_the_fixture_is_a_valid_report():
    validate(fixture_report(), "report.schema.json")
    validate(fixture_report(name=EVIL, evil=EVIL + EVIL_IMG, n=2000), "report.schema.json")


def test_the_page_shows_the_report():
    page = render_html(fixture_report())
    assert page.startswith("<!DOCTYPE html>") and page.count('<table class="summary"') == 1
    assert page.count("<svg") == PLOTTED
    for words in ("two roundings fl(fl(w*x)+b)", "reads a subnormal learning rate as zero",
                  "may overflow: <span", "w*x 3</span>", "0.9*", "0.91+", "4.69", "0.7",
                  "75.0%", "300 of 400", "99.9%", "ulps of scale</th>", LEGEND[:40],
                  "rtol = 1.3e-06", "No plot", "unsupported", "0: conformant", "1: non-conformant",
                  "2: not checked", "\u2190 this run", "seed", "ieee", "exact", "Linux x86_64",
                  "declined: 2 cases with a negative learning rate"):
        assert html.escape(words, quote=False) in page or words in page, words
    assert re.search(r'<li class="this">1: non-conformant', page)
    assert '<pre class="replay"><code>neuronspec replay numpy:step --dtype float16' in page
    assert re.search(r'<td class="n bad">4.69</td>', page)


def test_a_report_with_less_in_it_renders():
    """Without plots and the per-quantity figures (an older or a stopped run's report), and
    interrupted."""
    report = fixture_report()
    for r in report["implementations"][0]["formats"].values():
        r.pop("plot", None)
        for st in r["quantities"].values():
            for key in ("worstUlpsOfScale", "ulpsOfScaleValues", "worstIsCorrectlyRounded",
                        "worstEvaluation", "correctlyRounded", "caseByCase", "outOfDomainWhy"):
                st.pop(key, None)
    report["interrupted"] = "SIGTERM"
    report["implementations"].append({"name": "stopped", "origin": "x.py", "version": "",
                                       "verdict": "not checked", "error": "could not load",
                                       "formats": {}})
    page = render_html(report)
    assert "<svg" not in page and "143: stopped by SIGTERM" in page
    assert "may overflow: <span class=\"nw\">an admitted evaluation 3<" in page
    assert "could not load" in page


def test_what_the_implementation_says_is_escaped():
    page = render_html(fixture_report(name=EVIL, evil=EVIL + EVIL_IMG))
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page


def test_thousands_of_points_stay_a_small_page():
    page = render_html(fixture_report(n=2000))  # the most a report holds
    assert len(page) < 400_000, len(page)  # marks on the same pixel are drawn once


# ---- the browser -------------------------------------------------------------------------------

def chromium() -> str:
    """Chromium's path; a skip where it is missing, a failure where CI is set."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail("chromium is missing and CI is set: the HTML report's browser tests cannot "
                    "run (apt-get install -y chromium)")
    pytest.skip("chromium is not installed (apt-get install -y chromium); with CI=true this "
                "is a failure")


def _high(fd: int) -> int:
    """``fd`` moved to 10 or above, clear of the 3 and 4 the browser's pipe must become."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    """Headless Chromium over the DevTools protocol on a pipe; every wait bounded."""

    def __init__(self, exe: str, user_data: Path):
        to_child_r, self._to_child = map(_high, os.pipe())
        self._from_child, from_child_w = map(_high, os.pipe())
        self._log = tempfile.TemporaryFile()
        args = [exe, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-pipe", f"--user-data-dir={user_data}", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-sync",
                "--disable-background-networking", "--disable-component-update",
                "--hide-scrollbars", "--mute-audio", "about:blank"]
        # the pipe must be fds 3 (commands in) and 4 (answers out): bash moves them there
        self.proc = subprocess.Popen(
            ["bash", "-c", 'exec "$0" "$@" 3<&"$R" 4>&"$W"', *args],
            env=dict(os.environ, R=str(to_child_r), W=str(from_child_w)),
            pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=self._log, start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf, self._id, self.events = b"", 0, []

    def _next(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise TimeoutError(f"chromium did not answer within {TIMEOUT:g} s")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed its pipe: " + self.log()[-2000:])
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        message = json.loads(raw)
        if "method" in message:
            self.events.append(message)
            if message["method"] == "Page.javascriptDialogOpening":  # an alert would block
                self.send("Page.handleJavaScriptDialog", {"accept": True},
                          message.get("sessionId"), wait=False)
        return message

    def send(self, method: str, params: "dict | None" = None, session: "str | None" = None,
             wait: bool = True) -> dict:
        self._id += 1
        ident = self._id
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_child, data):]
        deadline = time.monotonic() + TIMEOUT
        while wait:
            answer = self._next(deadline)
            if answer.get("id") == ident:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
        return {}

    def open(self, path: Path, width: int = 1280, height: int = 2000) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                         "deviceScaleFactor": 1,
                                                         "mobile": False}, session)
        start = len(self.events)
        self.send("Page.navigate", {"url": path.as_uri()}, session)
        deadline = time.monotonic() + TIMEOUT
        while not any(e["method"] == "Page.loadEventFired" and e.get("sessionId") == session
                      for e in self.events[start:]):
            self._next(deadline)
        return Page(self, session, start)

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 -- it is killed below in any case
            pass
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=TIMEOUT)
            os.close(self._to_child)
            os.close(self._from_child)
            self._log.close()


class Page:
    def __init__(self, browser: Browser, session: str, start: int):
        self.browser, self.session, self.start = browser, session, start

    def evaluate(self, expression: str):
        result = self.browser.send("Runtime.evaluate", {"expression": expression,
                                                        "returnByValue": True}, self.session)
        return result["result"].get("value")

    def _events(self) -> list[dict]:
        self.evaluate("0")  # a round trip: what the page logged before has arrived
        return [e for e in self.browser.events[self.start:] if e.get("sessionId") == self.session]

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and the browser's own error log entries."""
        out = []
        for e in self._events():
            p = e["params"]
            if e["method"] == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                  for a in p["args"]))
            elif e["method"] == "Runtime.exceptionThrown":
                details = p["exceptionDetails"]
                out.append("exception: " + details.get("exception", {}).get(
                    "description", details.get("text", "")))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append("log: " + p["entry"]["text"])
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self._events()
                if e["method"] == "Network.requestWillBeSent"]

    def dialogs(self) -> list[str]:
        return [e["params"]["message"] for e in self._events()
                if e["method"] == "Page.javascriptDialogOpening"]

    def screenshot(self, clip_height: "int | None" = None) -> bytes:
        params: dict = {"format": "png"}
        if clip_height:
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": 1280, "height": clip_height,
                                "scale": 1})
        return base64.b64decode(self.browser.send("Page.captureScreenshot", params,
                                                  self.session)["data"])


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(chromium(), tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _counts(page: Page) -> dict:
    return page.evaluate("({svg: document.querySelectorAll('svg').length, "
                         "summary: document.querySelectorAll('table.summary tbody tr').length, "
                         "scripts: document.querySelectorAll('script').length, "
                         "images: document.querySelectorAll('img').length, "
                         "marks: document.querySelectorAll('svg path[class^=series]').length, "
                         "heading: document.querySelector('section.impl h2').textContent})")


def test_the_report_loads_cleanly_and_shows_table_and_plots(browser, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(render_html(fixture_report()), encoding="utf-8")
    page = browser.open(path)
    assert page.errors() == []
    assert page.requests() == [path.as_uri()]  # nothing but the page itself
    counts = _counts(page)
    assert counts["svg"] == PLOTTED and counts["scripts"] == 0
    assert counts["summary"] == 3 * len(REQUIRED) + 1  # float16, float32, float64; bfloat16
    assert counts["marks"] == PLOTTED * 2 * len(REQUIRED)  # a path per quantity and panel
    png = page.screenshot()
    assert _png_size(png) == (1280, 2000) and len(png) > 50_000
    (tmp_path / "report.png").write_bytes(png)


def test_an_implementation_named_like_a_script_stays_text(browser, tmp_path):
    path = tmp_path / "evil.html"
    path.write_text(render_html(fixture_report(name=EVIL, evil=EVIL + EVIL_IMG)),
                    encoding="utf-8")
    page = browser.open(path)
    counts = _counts(page)
    assert page.dialogs() == [] and page.errors() == []
    assert counts["scripts"] == 0 and counts["images"] == 0
    assert counts["heading"].startswith(EVIL)


def test_runs_of_sgd_show_as_a_table_and_stay_text(browser, tmp_path):
    """``--run``: a section per implementation's runs, a row per format and option set; what
    the implementation said (its name, a failure's message) stays inert text."""
    from neuronspec.runs.sgd import RunResult

    good = RunResult("float32", "momentum=0.9,nesterov", {"momentum": 0.9}, runs=2, steps=6)
    bad = RunResult("float16", "maximize", {"maximize": True}, runs=2, steps=3, failed_runs=1)
    bad.failures.append({"step": 2, "quantity": "-", "why": EVIL + EVIL_IMG, "state": {},
                         "inputs": None, "replay": "neuronspec replay x --dtype float16"})
    report = dict(fixture_report(), runs=[{"implementation": EVIL, "verdict": "non-conformant",
                                           "results": [good.as_dict(), bad.as_dict()]}])
    path = tmp_path / "runs.html"
    path.write_text(render_html(report), encoding="utf-8")
    page = browser.open(path)
    assert page.errors() == [] and page.dialogs() == []
    rows = page.evaluate("document.querySelectorAll('section.impl:last-of-type tbody tr')"
                         ".length")
    assert rows == 2
    assert _counts(page)["scripts"] == 0 and _counts(page)["images"] == 0


def test_the_browser_check_sees_console_errors_and_requests(browser, tmp_path):
    """The checks above can fail: a page that logs an error, throws and loads an image."""
    path = tmp_path / "bad.html"
    path.write_text("<!DOCTYPE html><title>bad</title><p>bad</p>"
                    "<script>console.error('deliberate error')</script>"
                    "<script>throw new Error('deliberate exception')</script>"
                    '<img src="http://127.0.0.1:9/x.png">')
    page = browser.open(path)
    errors = page.errors()
    assert any("deliberate error" in e for e in errors), errors
    assert any("deliberate exception" in e for e in errors), errors
    assert "http://127.0.0.1:9/x.png" in page.requests()


def test_without_chromium_the_browser_tests_skip_or_fail_under_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        chromium()


# ---- the command line --------------------------------------------------------------------------

def test_check_writes_a_self_contained_page(tmp_path):
    out = tmp_path / "r.html"
    proc = subprocess.run([sys.executable, "-m", "neuronspec", "check", "numpy", "--dtype",
                           "float32", "--examples", "30", "--sweep", "0", "--vectors", "",
                           "--html", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    page = out.read_text(encoding="utf-8")
    assert '<table class="summary"' in page and ">numpy</a>" in page
    assert page.count("<svg") == 1  # the report's plot data for float32, drawn
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page and "<script" not in page
    assert not re.search(r"url\((?!#)", page)  # the plots' markers: url(#id), in the page


def _children(pid: int) -> list[int]:
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"\nPPid:\t{pid}\n" in status.read_text():
                out.append(int(status.parent.name))
        except OSError:  # it ended meanwhile
            pass
    return out


def test_an_interrupted_check_still_writes_the_page(tmp_path):
    out, calls = tmp_path / "r.html", tmp_path / "calls"
    calls.write_bytes(b"")
    # the signal comes once the subject has answered a few calls (it counts them in the file
    # NEURONSPEC_FAULT_CALLS names): the run is then in the format's hypothesis phase
    env = dict(os.environ, NEURONSPEC_FAULT_CALLS=str(calls))
    proc = subprocess.Popen([sys.executable, "-m", "neuronspec", "check",
                             f"{ROOT / 'tests' / 'faults' / 'subjects.py'}:slow", "--dtype",
                             "float64", "--examples", "100000", "--sweep", "0", "--vectors", "",
                             "--html", str(out)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while calls.stat().st_size < 20 and time.monotonic() < deadline \
                and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=TIMEOUT) == 143
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=TIMEOUT)
    page = out.read_text(encoding="utf-8")
    assert "143: stopped by SIGTERM" in page and '<table class="summary"' in page
    assert ">float64</a>" in page


def test_an_unwritable_html_path_is_refused_before_the_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "neuronspec", "check", "numpy", "--html",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 2 and "is a folder" in proc.stderr and not proc.stdout


# ---- the README's screenshot -------------------------------------------------------------------

def screenshot(out: Path) -> None:
    """A real check of numpy and of a mutant that reads a subnormal learning rate as zero, in
    float16 (the shipped vectors, 200 examples, a sweep of 3,000), cropped after the first
    plot."""
    import io

    from neuronspec.implementations import load
    from neuronspec.runs.check import check

    from neuronspec.runs import vectors

    specs = ["numpy", str(ROOT / "tests" / "mutants" / "daz_lr.py") + ":step"]
    report = check([load(spec) for spec in specs], formats=["float16"], examples=200, seed=0,
                   sweep=3000, vectors=vectors.load(None))
    with tempfile.TemporaryDirectory() as tmp:
        page_path = Path(tmp) / "report.html"
        page_path.write_text(render_html(report), encoding="utf-8")
        b = Browser(chromium(), Path(tmp) / "profile")
        try:
            page = b.open(page_path, height=1000)
            assert page.errors() == [], page.errors()
            bottom = page.evaluate("document.querySelector('figure').getBoundingClientRect()"
                                   ".bottom + window.scrollY")
            png = page.screenshot(clip_height=math.ceil(bottom) + 16)
        finally:
            b.close()
    try:  # a palette of 256 colours: a third of the size, the same to the eye
        from PIL import Image

        buffer = io.BytesIO()
        Image.open(io.BytesIO(png)).convert("RGB").quantize(256).save(buffer, "PNG",
                                                                        optimize=True)
        png = buffer.getvalue()
    except ImportError:
        pass
    out.write_bytes(_with_text(png, "Description", f"Generated by `{SCREENSHOT_COMMAND}`; "
                                                   f"renderer {renderer_digest()}"))


#: The command that regenerates the README's screenshot.
SCREENSHOT_COMMAND = "python tests/test_html.py docs/html-report.png"
#: The code that draws the page: the screenshot is stale when it changes.
RENDERER = ("neuronspec/artefacts/html.py", "neuronspec/artefacts/svg.py",
            "neuronspec/artefacts/report.py")


def renderer_digest() -> str:
    digest = hashlib.sha256()
    for name in RENDERER:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def _with_text(png: bytes, key: str, value: str) -> bytes:
    """``png`` with a tEXt chunk after its header chunk (IHDR: 8 + 25 bytes)."""
    body = key.encode("latin-1") + b"\0" + value.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + \
        struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return png[:33] + chunk + png[33:]


def test_the_readme_screenshot_shows_the_current_renderer():
    """docs/html-report.png names the command that made it and the digest of the code that
    drew the page; it is stale (regenerate it with that command) when the code changed."""
    text = png_text(ROOT / "docs" / "html-report.png").get("Description", "")
    assert text == f"Generated by `{SCREENSHOT_COMMAND}`; renderer {renderer_digest()}", (
        f"docs/html-report.png is stale: regenerate it with `{SCREENSHOT_COMMAND}`")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/html-report.png")
    screenshot(target)
    print(f"wrote {target} ({target.stat().st_size:,} bytes)")
