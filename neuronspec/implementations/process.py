"""An implementation in any language, driven over the JSON-lines process protocol
(``spec/protocol.md``): it looks to the rest of neuronspec like a Python implementation."""

from __future__ import annotations

import atexit
import json
import math
import os
import queue
import shlex
import signal
import subprocess
import tempfile
import threading
from fractions import Fraction
from typing import Optional

from reference.formats import FORMATS, exact_decimal, float_hex, parse_hex
from reference.step import INPUTS, OPTIONAL, REQUIRED

from ..errors import ImplementationError, LoadError, ProcessGaveUp

__all__ = ["ProcessImplementation", "PROTOCOL"]

PROTOCOL = "neuronspec-protocol/1"
MAX_RESTARTS = 3


def _number(text, fmt_name: str, key: str) -> float:
    """A protocol value (hex, decimal, inf, nan) as the float it denotes, checked to be a
    value of the format."""
    if not isinstance(text, str):
        raise ImplementationError(f"{key} = {text!r} is not a string (send hex or decimal text)")
    s = text.strip()
    low = s.lower().lstrip("+-")
    if low in ("inf", "infinity"):
        return -math.inf if s.startswith("-") else math.inf
    if low == "nan":
        return math.nan
    try:
        if "0x" in low:
            q = parse_hex(s)
        else:
            q = Fraction(s)
    except (ValueError, ZeroDivisionError):
        raise ImplementationError(f"{key} = {text!r} is not a hex or decimal number") from None
    fmt = FORMATS[fmt_name]
    rounded = fmt.round(q)
    if not math.isfinite(rounded) or Fraction(rounded) != q:
        raise ImplementationError(f"{key} = {text!r} is not a {fmt_name} value (nearest: "
                                  f"{float_hex(rounded)})")
    if rounded == 0.0 and s.startswith("-"):
        return -0.0
    return rounded


class ProcessImplementation:
    """A command that speaks the process protocol; one process serves many cases."""

    def __init__(self, cmd: str, timeout: float = 10.0) -> None:
        if not cmd.strip():
            raise LoadError("--cmd needs a command to run")
        self.cmd, self.timeout = cmd, timeout
        self.name = shlex.split(cmd)[0].rsplit("/", 1)[-1]
        self.origin = cmd
        self.spec = f"--cmd {shlex.quote(cmd)}"
        self._proc: Optional[subprocess.Popen] = None
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._stderr = None
        self._failed_starts = 0
        self._counter = 0
        self._last_problem = ""
        atexit.register(self._kill)  # never leave a child behind, whatever path exits
        self._start(first=True)

    # --- process management ---------------------------------------------------------------
    def _start(self, first: bool = False) -> None:
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                self.cmd, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._stderr, text=True, bufsize=1, start_new_session=True)
        except OSError as exc:
            raise LoadError(f"cannot start {self.cmd!r}: {exc}") from None
        self._lines = queue.Queue()
        threading.Thread(target=self._read, args=(self._proc, self._lines), daemon=True).start()
        try:
            self._proc.stdin.write(json.dumps({"protocol": PROTOCOL}) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # reported on the first case
        if first:
            # a command that is not there (exit 126/127 from the shell) is a usage error
            try:
                code = self._proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                return
            if code in (126, 127):
                raise LoadError(f"cannot start {self.cmd!r}: {self._stderr_tail() or 'not found'}")

    @staticmethod
    def _read(proc: subprocess.Popen, lines: "queue.Queue[Optional[str]]") -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)  # EOF

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text.splitlines()[-1][:200] if text else ""

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self._proc.kill()
            self._proc.wait()

    def _restart(self) -> None:
        self._kill()
        self._failed_starts += 1
        if self._failed_starts > MAX_RESTARTS:
            raise ProcessGaveUp(f"{self.cmd!r} failed {MAX_RESTARTS} restarts in a row; last: "
                                f"{self._last_problem or self._stderr_tail() or 'no message'}")
        self._start()

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._kill()
            self._proc = None

    # --- the step protocol ------------------------------------------------------------------
    def __call__(self, fmt: str, case: tuple) -> dict[str, float]:
        if self._proc is None or self._proc.poll() is not None:
            self._restart()
        self._counter += 1
        rid = f"{fmt}-{self._counter}"
        request = {"id": rid, "format": fmt, "inputs": {
            k: {"hex": float_hex(v), "decimal": exact_decimal(v, 2000)}
            for k, v in zip(INPUTS, case)}}
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the missing response below says what happened
        try:
            line = self._lines.get(timeout=self.timeout)
        except queue.Empty:
            self._last_problem = (f"{self.name} timed out after {self.timeout:g} s "
                                  f"(no response to request {rid})")
            self._restart()
            raise ImplementationError(self._last_problem) from None
        if line is None:
            code = self._proc.wait()
            tail = self._stderr_tail()
            self._last_problem = (f"{self.name} exited with status {code} on request {rid}"
                                  + (f": {tail}" if tail else ""))
            self._restart()
            raise ImplementationError(self._last_problem)
        self._failed_starts = 0
        return self._parse(line, rid, fmt)

    def _parse(self, line: str, rid: str, fmt: str) -> dict[str, float]:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            raise ImplementationError(f"{self.name} answered request {rid} with a line that is "
                                      f"not JSON: {line.strip()[:80]!r}") from None
        if not isinstance(msg, dict):
            raise ImplementationError(f"{self.name} answered {rid} with {type(msg).__name__}, "
                                      "not a JSON object")
        if msg.get("id") != rid:
            raise ImplementationError(f"{self.name} answered request {rid} with id "
                                      f"{msg.get('id')!r}")
        if "unsupported" in msg:
            raise NotImplementedError(str(msg["unsupported"]))
        if "error" in msg:  # like an overflow exception: allowed outside the domain
            raise ImplementationError(f"{self.name} reported an error: {msg['error']}",
                                      overflow=True)
        outputs = msg.get("outputs")
        if not isinstance(outputs, dict):
            raise ImplementationError(f"{self.name} answered {rid} without an 'outputs' object")
        missing = [k for k in REQUIRED if k not in outputs]
        if missing:
            raise ImplementationError(f"{self.name} answered {rid} without {', '.join(missing)}")
        keys = REQUIRED + tuple(k for k in OPTIONAL if k in outputs)
        return {k: _number(outputs[k], fmt, k) for k in keys}

    def version(self) -> str:
        return "unknown (external process)"
