"""An implementation in any language, driven over the JSON-lines process protocol
(``spec/protocol.md``): it looks to the rest of neuronspec like a Python implementation.

The process is supervised: every answer is awaited at most ``timeout`` seconds; a process that
exits, hangs, closes its output, or answers garbage or invalid UTF-8 makes that case a reported
failure and is restarted; after ``MAX_RESTARTS`` failures in a row the run stops
(:class:`~neuronspec.errors.ProcessGaveUp`).  The process runs in its own process group, which is
killed whenever the checker stops.  Python implementations are checked through the same
supervision (``load.supervised``): nothing they do can end or stall the run.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import selectors
import shlex
import signal
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from reference.formats import FLOAT64, exact_decimal, float_hex, parse_exact
from reference.optim import STEP_QUANTITIES
from reference.step import INPUTS, OPTIONAL, REQUIRED

from ..errors import ImplementationError, LoadError, ProcessGaveUp

__all__ = ["ProcessImplementation", "PROTOCOL", "MAX_RESTARTS", "DEFAULT_TIMEOUT",
           "stop_all", "close_all", "exit_words"]

PROTOCOL = "neuronspec-protocol/1"
#: The version a check that asks for runs speaks (spec/protocol.md R5).
PROTOCOL_RUNS = "neuronspec-protocol/2"
#: What ``serve.py`` says on standard error once it has loaded the implementation.
READY = "serve.py: serving "
MAX_RESTARTS = 3
#: The longest response line read (bytes): a process that writes more without a newline is
#: answering garbage, and is not allowed to fill the checker's memory.
MAX_LINE = 1 << 20
#: Seconds a process may take to answer one case (``--timeout``).
DEFAULT_TIMEOUT = 10.0
#: Programs that run another program: a command is named after what they run.
_RUNNERS = {"python", "python3", "pypy", "pypy3", "node", "ruby", "perl", "bash", "sh", "env",
            "java", "julia", "Rscript", "deno", "bun", "uv", "poetry", "conda"}

#: Every process implementation not yet closed (closing removes it): killed on any exit.
_ALIVE: "set[ProcessImplementation]" = set()


def stop_all() -> None:
    """Kill every protocol process still running (on exit, interruption or a signal)."""
    for impl in list(_ALIVE):
        impl.kill()


atexit.register(stop_all)


def close_all(impls: Sequence[object]) -> None:
    """``close`` each implementation that has it, the processes at once: each gets the end of
    its input before any is waited for (a torch server takes about 0.4 s to exit)."""
    for impl in impls:
        if isinstance(impl, ProcessImplementation) and impl._proc is not None:
            try:
                impl._proc.stdin.close()
            except OSError:
                pass
    for impl in impls:
        close = getattr(impl, "close", None)
        if close:
            close()


def _number(text, key: str) -> float:
    """A protocol value (hex, decimal, inf, nan) as the binary64 value it denotes; whether it
    is a value of the format is for the judge to say, as for any implementation.  Absurd
    exponents are refused before any exact arithmetic."""
    if not isinstance(text, str):
        raise ImplementationError(f"{key} = {text!r} is not a string (send hex or decimal text)")
    try:  # fast path: Python's own exact spelling, as serve.py writes it
        value = float.fromhex(text)
        if value.hex() == text:
            return value
    except (ValueError, OverflowError):
        pass
    s = text.strip()
    low = s.lower().lstrip("+-")
    if low in ("inf", "infinity"):
        return -math.inf if s.startswith("-") else math.inf
    if low == "nan":
        return math.nan
    try:
        q = parse_exact(s)
    except ValueError as exc:
        raise ImplementationError(f"{key}: {exc}") from None
    value = FLOAT64.round(q)
    if not math.isfinite(value) or q != value:
        raise ImplementationError(f"{key} = {text[:80]!r} is not a binary64 value, so not a "
                                  f"value of any format (nearest: {float_hex(value)})")
    return -0.0 if value == 0.0 and s.startswith("-") else value


@dataclass(eq=False)
class _Request:
    """A request sent to the process: its id, format and case (as bits), its response line
    once read, whether a call has claimed it, whether it was dropped (a prefetch no call
    used)."""

    rid: str
    fmt: str
    key: tuple
    line: Optional[bytes] = None
    claimed: bool = False
    dropped: bool = False


def _key(case: tuple) -> tuple:
    return tuple(float(v).hex() for v in case)  # -0.0 is not 0.0 here


def exit_words(code: "int | None") -> str:
    """How a process ended, in words: ``exited with status 3``, ``was killed by SIGSEGV``."""
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _name_of(argv: Sequence[str]) -> str:
    """A command named after the program it runs: ``python prog.py`` is ``prog.py``."""
    for word in argv:
        base = Path(word).name
        if word.startswith("-") or "=" in word and "/" not in word:
            continue
        if base.split(".")[0] not in _RUNNERS and not base.startswith("python"):
            return base
    return Path(argv[0]).name if argv else "command"


class ProcessImplementation:
    """A program that speaks the process protocol; one process serves many cases.

    ``cmd``: a shell command line (``--cmd``) or an argument list.  ``decimals``: send each
    input's exact decimal next to its hex (the protocol's promise to ``--cmd`` programs; the
    Python server reads the hex).  ``load_timeout``: if set (the Python server), the process
    must say it is ready within it, and one that ends before could not load its implementation
    (:class:`LoadError`, not a failure of a case); ``wait=False`` leaves that wait to
    :meth:`wait_ready`, so that several processes load at once."""

    batch = None  # no batch callable: sweeps call it case by case (requests in windows)

    def __init__(self, cmd: Union[str, Sequence[str]], timeout: float = DEFAULT_TIMEOUT, *,
                 name: Optional[str] = None, spec: Optional[str] = None,
                 origin: Optional[str] = None, version: str = "unknown (external process)",
                 decimals: bool = True, load_timeout: Optional[float] = None,
                 wait: bool = True, runs: bool = False) -> None:
        if isinstance(cmd, str):
            if not cmd.strip():
                raise LoadError("--cmd needs a command to run")
            argv = shlex.split(cmd)
        else:
            argv = list(cmd)
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise LoadError(f"the timeout must be a positive number of seconds, not {timeout!r}")
        self.cmd, self.timeout, self.decimals = cmd, float(timeout), decimals
        self.name = name or _name_of(argv)
        self.origin = origin or (cmd if isinstance(cmd, str) else shlex.join(cmd))
        self.spec = spec or f"--cmd {shlex.quote(cmd if isinstance(cmd, str) else shlex.join(cmd))}"
        self._version = version
        # a check that asks for runs speaks version 2; every other keeps version 1 (R5)
        self.protocol = PROTOCOL_RUNS if runs else PROTOCOL
        self._open_run: "tuple[str, int, int] | None" = None  # (id, next step, last step)
        self._proc: Optional[subprocess.Popen] = None
        self._buffer = bytearray()
        self._eof = False
        self._selector: Optional[selectors.BaseSelector] = None
        self._writer: Optional[selectors.BaseSelector] = None
        # requests sent and not yet handed to a caller, oldest first (``prefetch``)
        self._pending: "deque[_Request]" = deque()
        self._stuck = ""  # why the last write could not finish (reported by the next call)
        self._stderr = None
        self._failed_starts = 0
        self._counter = 0
        self._last_problem = ""
        _ALIVE.add(self)
        self._start(first=load_timeout is None)  # the server's readiness says more
        self._loading = load_timeout
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the server has loaded the implementation (``load_timeout`` given; no-op
        otherwise or once done): a :class:`LoadError` if it cannot."""
        if self._loading is not None:
            seconds, self._loading = self._loading, None
            self._wait_loaded(seconds)

    # --- process management ---------------------------------------------------------------
    def _start(self, first: bool = False) -> None:
        if self._stderr is not None:
            self._stderr.close()
        # The process appends to the file through its own open file description; we read it
        # through another: a shared offset would let our reads move where it writes.
        fd, path = tempfile.mkstemp(prefix="neuronspec-stderr-")
        try:
            self._stderr = open(path, "rb")
            appender = os.open(path, os.O_WRONLY | os.O_APPEND)
        finally:
            os.close(fd)
            os.unlink(path)
        try:
            self._proc = subprocess.Popen(
                self.cmd, shell=isinstance(self.cmd, str), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=appender, start_new_session=True)
        except OSError as exc:
            raise LoadError(f"cannot start {self.origin!r}: {exc}") from None
        finally:
            os.close(appender)
        self._buffer, self._eof = bytearray(), False
        for old in (self._selector, self._writer):
            if old is not None:
                old.close()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._proc.stdout, selectors.EVENT_READ)
        os.set_blocking(self._proc.stdin.fileno(), False)  # writes wait at most the timeout
        self._writer = selectors.DefaultSelector()
        self._writer.register(self._proc.stdin, selectors.EVENT_WRITE)
        self._pending.clear()
        self._stuck = ""
        self._open_run = None
        self._send({"protocol": self.protocol})
        if first:
            # a command that is not there (exit 126/127 from the shell) is a usage error
            try:
                code = self._proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                return
            if code in (126, 127):
                raise LoadError(f"cannot start {self.origin!r}: "
                                f"{self._stderr_tail() or 'not found'}")

    def _wait_loaded(self, seconds: float) -> None:
        """Wait until the server says it loaded the implementation (``READY`` on standard
        error); an end before that, or no word within ``seconds``, is a load error with the
        process's last line of standard error."""
        deadline = time.monotonic() + seconds
        ready, seen = READY.encode(), 0
        while True:
            new = self._stderr_bytes(seen)  # only what is new: an import may print a lot
            if ready in new:
                return
            seen += max(0, len(new) - len(ready))
            code = self._proc.poll()
            if code is not None:
                self.close()
                raise LoadError(f"cannot load implementation {self.spec}: its process exited "
                                f"with status {code} before it was ready"
                                + (f": {self._stderr_tail()}" if self._stderr_tail() else ""))
            if time.monotonic() > deadline:
                self.close()
                raise LoadError(f"cannot load implementation {self.spec}: not ready after "
                                f"{seconds:g} s (its import hangs?)")
            time.sleep(0.02)

    def _stderr_bytes(self, start: int = 0, most: int = 1 << 16) -> bytes:
        """At most ``most`` bytes of what the process wrote to standard error: from ``start``,
        or the last ones (``start`` < 0)."""
        try:
            if start < 0:
                self._stderr.seek(0, os.SEEK_END)
                start = max(0, self._stderr.tell() - most)
            self._stderr.seek(start)
            return self._stderr.read(most)
        except (OSError, ValueError):
            return b""

    def _readline(self, seconds: float) -> Optional[bytes]:
        """The next line of the process's output, or None at its end; ``TimeoutError`` when
        none comes within ``seconds``, ``ImplementationError`` for a line over ``MAX_LINE``.
        Reads the pipe directly (no reader thread): a call costs one round trip."""
        deadline = time.monotonic() + seconds
        fd = self._proc.stdout.fileno()
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end + 1])
                del self._buffer[:end + 1]
                return line
            if len(self._buffer) > MAX_LINE:
                self._buffer.clear()
                raise ImplementationError(f"{self.name} wrote more than {MAX_LINE} bytes "
                                          "without a newline")
            if self._eof:
                if self._buffer:
                    line = bytes(self._buffer)
                    self._buffer.clear()
                    return line
                return None
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                raise TimeoutError
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True

    def _send(self, message: dict) -> bool:
        """Write one message; False when the process did not take it within the timeout (it
        does not read its input).  A closed pipe is not reported here: the missing response
        says what happened."""
        data = memoryview((json.dumps(message) + "\n").encode())
        fd = self._proc.stdin.fileno()
        deadline = time.monotonic() + self.timeout
        while data:
            try:
                data = data[os.write(fd, data):]
                continue
            except BlockingIOError:
                pass
            except OSError:  # closed: it exited
                return True
            left = deadline - time.monotonic()
            if left <= 0 or not self._writer.select(left):
                self._stuck = (f"{self.name} did not read its input for {self.timeout:g} s "
                               f"(request {message.get('id', 'hello')} not taken)")
                return False
        return True

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        lines = [line for line in self._stderr_bytes(-1).decode("utf-8", "replace").splitlines()
                 if line.strip() and not line.startswith(READY)]
        return " ".join(lines[-1].split())[:200] if lines else ""

    def kill(self) -> None:
        """Kill the process and its whole process group (whatever it started)."""
        proc = self._proc
        if proc is None:
            return
        # the group even when its leader has ended: what it started may still run (Linux
        # does not reuse the id of a group that still has members)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            if proc.poll() is None:
                proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for pipe in (proc.stdin, proc.stdout):  # no descriptor leaks across restarts
            try:
                pipe.close()
            except (OSError, ValueError):
                pass

    def _restart(self) -> None:
        self.kill()
        self._failed_starts += 1
        if self._failed_starts > MAX_RESTARTS:
            raise ProcessGaveUp(f"{self.name} failed {MAX_RESTARTS} restarts in a row; last: "
                                f"{self._last_problem or self._stderr_tail() or 'no message'}")
        self._start()

    def close(self) -> None:
        """End the process: close its input (a clean end of the protocol), then kill it."""
        if self._proc is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            self.kill()
            self._proc = None
        for selector in (self._selector, self._writer):
            if selector is not None:
                selector.close()
        self._selector = self._writer = None
        _ALIVE.discard(self)

    # --- the step protocol ------------------------------------------------------------------
    def _fail(self, problem: str) -> ImplementationError:
        self._last_problem = problem
        self._restart()
        return ImplementationError(problem)

    def _request(self, fmt: str, case: tuple) -> "_Request":
        self._drain_run()
        if self._proc is None or self._proc.poll() is not None:
            self._restart()
        self._counter += 1
        req = _Request(f"{fmt}-{self._counter}", fmt, _key(case))
        self._pending.append(req)
        self._send({"id": req.rid, "format": fmt, "inputs": {
            k: ({"hex": float_hex(v), "decimal": exact_decimal(v, 2000)} if self.decimals
                else {"hex": float_hex(v)}) for k, v in zip(INPUTS, case)}})
        return req

    def prefetch(self, fmt: str, cases: Sequence[tuple]) -> None:
        """Send the requests of the next calls at once (``cases`` in the order they will
        come): the process works while the checker judges, and a call costs no round trip.
        Each call is still one invocation of the step; requests no call claims are dropped
        at the next ``prefetch``."""
        for req in self._pending:
            req.dropped = True
        for case in cases:
            if self._stuck:
                return
            self._request(fmt, case)

    def __call__(self, fmt: str, case: tuple) -> dict[str, float]:
        key = _key(case)
        req = next((r for r in self._pending
                    if not r.dropped and not r.claimed and r.fmt == fmt and r.key == key), None)
        if req is None:
            req = self._request(fmt, case)
        req.claimed = True
        line = self._response(req)
        self._pending.remove(req)
        msg = self._message(line, req.rid)
        self._failed_starts = 0  # a well-formed answer: the process works
        return self._outputs(msg, req.rid)

    def _response(self, req: "_Request") -> bytes:
        """The line answering ``req``: lines are read in request order, each one given to the
        oldest request without one (a dropped request's line is thrown away)."""
        while req.line is None:
            head = next(r for r in self._pending if r.line is None)
            line = self._awaited(f"request {head.rid}")
            head.line = line
            if head.dropped:
                self._pending.remove(head)
        return req.line

    def _message(self, raw: bytes, rid: str) -> dict:
        """The response line as a JSON object answering ``rid``.  Anything else means the
        stream is out of step with the requests: a failure, and the process is restarted."""
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail(f"{self.name} answered request {rid} with a line that is not "
                             f"UTF-8: {raw[:80]!r}") from None
        try:
            msg = json.loads(line)
        except ValueError:
            raise self._fail(f"{self.name} answered request {rid} with a line that is not "
                             f"JSON: {line.strip()[:80]!r}") from None
        if not isinstance(msg, dict):
            raise self._fail(f"{self.name} answered {rid} with {type(msg).__name__}, not a "
                             "JSON object")
        if msg.get("id") != rid:
            raise self._fail(f"{self.name} answered request {rid} with id "
                             f"{str(msg.get('id'))[:80]!r}"
                             + (f": {str(msg.get('failure', msg.get('error')))[:200]}"
                                if "failure" in msg or "error" in msg else ""))
        return msg

    def _outputs(self, msg: dict, rid: str) -> dict[str, float]:
        """The values of a response, or why there are none."""
        if "unsupported" in msg:
            raise NotImplementedError(str(msg["unsupported"])[:200])
        return self._values_of(msg, rid, REQUIRED)

    def _values_of(self, msg: dict, rid: str, required: tuple) -> "dict[str, float | None]":
        """The values of a response with the keys ``required`` (a run's buffers may be null:
        no buffer), or why there are none."""
        if "failure" in msg:  # never allowed (an exception, an output that is no number)
            raise ImplementationError(f"{self.name} failed: {str(msg['failure'])[:300]}")
        if "error" in msg:  # like an overflow exception: allowed outside the domain
            raise ImplementationError(f"{self.name} reported an error: "
                                      f"{str(msg['error'])[:300]}", overflow=True)
        outputs = msg.get("outputs")
        if not isinstance(outputs, dict):
            raise ImplementationError(f"{self.name} answered {rid} without an 'outputs' object")
        missing = [k for k in required if k not in outputs]
        if missing:
            raise ImplementationError(f"{self.name} answered {rid} without {', '.join(missing)}")
        keys = required + tuple(k for k in OPTIONAL if k in outputs)
        return {k: None if outputs[k] is None and k.startswith("buf_") else
                _number(outputs[k], k) for k in keys}

    # --- runs of SGD with options (protocol version 2) ------------------------------------
    def _encode(self, v: float) -> dict:
        return {"hex": float_hex(v), "decimal": exact_decimal(v, 2000)} if self.decimals \
            else {"hex": float_hex(v)}

    def _options(self, options: dict) -> dict:
        return {k: self._encode(float(v)) if k in ("momentum", "dampening", "weight_decay")
                else v for k, v in options.items()}

    def _fresh(self) -> None:
        """No request of another kind in flight (a run's lines follow its request), and a
        process that runs.  The lines of requests no caller claimed (prefetched cases, a run
        whose caller stopped reading) are read and dropped while the process runs; a process
        that ended (or gave them no answer) is restarted instead."""
        alive = self._proc is not None and self._proc.poll() is None
        try:
            if alive:
                for req in list(self._pending):
                    if req.line is None:
                        self._response(req)
                self._drain_run()
        except ImplementationError:  # (it failed on a request nobody awaits: restarted)
            pass
        self._pending.clear()
        self._open_run = None
        if self._proc is None or self._proc.poll() is not None:
            self._restart()

    def _awaited(self, what: str) -> bytes:
        """The next line, awaited at most the timeout; a failure naming ``what`` was awaited
        where none comes (a hang, an exit, an output closed while the process runs on)."""
        if self._stuck:
            raise self._fail(self._stuck)
        try:
            line = self._readline(self.timeout)
        except ImplementationError as exc:
            raise self._fail(str(exc)) from None
        except TimeoutError:
            raise self._fail(f"{self.name} timed out after {self.timeout:g} s (no response "
                             f"to {what})") from None
        if line is None:
            try:  # the output closed: an exit, or a process that closed it and goes on
                how = exit_words(self._proc.wait(timeout=min(self.timeout, 2.0)))
            except subprocess.TimeoutExpired:
                how = "closed its standard output and kept running"
            tail = self._stderr_tail()
            raise self._fail(f"{self.name} {how} on {what}" + (f": {tail}" if tail else ""))
        return line

    def _drain_run(self) -> None:
        """Read the lines of a run whose caller stopped reading before its last step."""
        if self._open_run is not None:
            rid, k, last = self._open_run
            self._open_run = None
            for step in range(k, last + 1):
                if "outputs" not in self._line(rid, step):
                    break

    def _line(self, rid: str, k: int) -> dict:
        """The next line, which must answer ``rid`` (step ``k`` of a run; 0: one line)."""
        what = f"request {rid}" + (f" step {k}" if k else "")
        msg = self._message(self._awaited(what), rid)
        if k and "unsupported" not in msg and msg.get("step") != k:
            raise self._fail(f"{self.name} answered {what} with step "
                             f"{str(msg.get('step'))[:20]!r}")
        return msg

    def run(self, fmt: str, w0: float, b0: float, data: Sequence[tuple], options: dict
            ) -> "Iterator[dict[str, float | None]]":
        """A run over protocol version 2 (R5), step by step as the lines arrive: as
        ``Implementation.run`` (NotImplementedError before step 1 where declined,
        ImplementationError with its ``step`` otherwise)."""
        self._fresh()
        self._counter += 1
        rid = f"{fmt}-run-{self._counter}"
        self._send({"id": rid, "type": "run", "format": fmt, "options": self._options(options),
                    "init": {"w": self._encode(w0), "b": self._encode(b0)},
                    "steps": [{"x": self._encode(x), "t": self._encode(t),
                               "lr": self._encode(lr)} for x, t, lr in data]})
        for k in range(1, len(data) + 1):
            self._open_run = (rid, k, len(data))  # (until its lines are read)
            try:
                msg = self._line(rid, k)
                self._open_run = (rid, k + 1, len(data)) if "outputs" in msg else None
                if "unsupported" in msg:
                    if k == 1:
                        raise NotImplementedError(str(msg["unsupported"])[:200])
                    raise self._fail(f"{self.name} declined request {rid} at step {k}")
                outputs = self._values_of(msg, rid, STEP_QUANTITIES)
            except ImplementationError as exc:
                exc.step = k
                raise
            self._failed_starts = 0
            yield outputs
        self._open_run = None

    def step_from_state(self, fmt: str, state: dict, x: float, t: float, lr: float,
                        options: dict) -> "dict[str, float | None]":
        """One step from ``state`` over protocol version 2 (R5)."""
        self._fresh()
        self._counter += 1
        rid = f"{fmt}-from-{self._counter}"
        self._send({"id": rid, "type": "step-from", "format": fmt,
                    "options": self._options(options),
                    "state": {k: None if v is None else self._encode(v) for k, v in state.items()},
                    "inputs": {"x": self._encode(x), "t": self._encode(t),
                               "lr": self._encode(lr)}})
        msg = self._line(rid, 0)
        if "unsupported" in msg:
            raise NotImplementedError(str(msg["unsupported"])[:200])
        self._failed_starts = 0
        return self._values_of(msg, rid, STEP_QUANTITIES)

    def version(self) -> str:
        return self._version
