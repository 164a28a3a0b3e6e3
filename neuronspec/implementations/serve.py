"""Serve a Python implementation of the step over the neuronspec process protocol.

Usage::

    python serve.py IMPL                                  (this file, copied anywhere)
    python -m neuronspec.implementations.serve IMPL       (where neuronspec is installed)

``IMPL`` names the implementation's step callable: ``module:callable`` (imported as
``python -m`` would, from the current directory and ``PYTHONPATH``) or
``path/to/file.py:callable``.  The callable follows the step protocol::

    step(w, b, x, t, lr, dtype) -> mapping with keys y, loss, dL_dw, dL_db, w_new, b_new
                                    (optionally dL_dy); values real numbers (float())

where ``dtype`` is a format name ("float16", "bfloat16", "float32", "float64"), the inputs are
Python floats holding values of that format, and an unsupported format raises
``NotImplementedError``.

The server speaks ``neuronspec-protocol/1`` (spec/protocol.md) on its standard input and
output: JSON lines, one response per request, flushed after each.  A request::

    {"id": "float32-17", "format": "float32",
     "inputs": {"w": {"hex": "0x1p-1", "decimal": "0.5"}, "b": {...}, "x": {...},
                "t": {...}, "lr": {...}}}

is answered with one of::

    {"id": "float32-17", "outputs": {"y": "0x1.ccccccp-1", ...}}     values: float(v).hex()
    {"id": "float32-17", "unsupported": "..."}                        NotImplementedError
    {"id": "float32-17", "error": "TypeName: message"}                 an ArithmeticError
    {"id": "float32-17", "failure": "TypeName: message"}               anything else

(an ``error`` is allowed where a quantity is outside the bounded domain, as an overflow
exception is; a ``failure`` never is: another exception, an output that is not a real number,
a request the server cannot read).

Inputs are read with ``float.fromhex`` (``float`` of the decimal when a hex is missing), so the
step receives exactly the checker's values.  Outputs are written with ``float.hex`` (exact), or
``inf``, ``-inf``, ``nan``.  The hello line ``{"protocol": ...}`` and blank lines get no
response.  Whatever the implementation prints, to ``sys.stdout`` or to file descriptor 1, goes
to standard error, so it cannot corrupt the protocol stream.

Exit status: 0 at the end of input, or when the process that started it is gone; 2, with one
line on standard error, when ``IMPL`` cannot be loaded or the command line is wrong.  Once it is loaded, the server says so on standard
error (``serve.py: serving IMPL``), before it reads the first request.

This file uses only the standard library and runs on Python >= 3.8; it imports nothing from
neuronspec, so it can be copied into the environment that holds the implementation::

    neuronspec check --cmd "/other/venv/bin/python serve.py mypkg.mod:step"
"""

import importlib
import importlib.util
import json
import math
import os
import sys
import threading
import time
from collections.abc import Mapping

PROTOCOL = "neuronspec-protocol/1"
#: The version that adds runs of SGD with options (spec/protocol.md R5).
PROTOCOLS = (PROTOCOL, "neuronspec-protocol/2")
STEP_QUANTITIES = ("y", "loss", "dL_dw", "dL_db", "w_new", "b_new", "buf_w",
                                  "buf_b")
OPTION_VALUES = ("momentum", "dampening", "weight_decay")
#: What this server says on standard error once the implementation is loaded.
READY = "serve.py: serving "
INPUTS = ("w", "b", "x", "t", "lr")
REQUIRED = ("y", "loss", "dL_dw", "dL_db", "w_new", "b_new")
OPTIONAL = ("dL_dy",)
USAGE = "usage: python serve.py IMPL   (IMPL: module:callable or path/to/file.py:callable)"


class LoadError(Exception):
    """An implementation that cannot be loaded; the message is one line."""


def _one_line(text):
    return " ".join(str(text).split())


def load(spec):
    """The callable named by ``spec`` (``module:callable`` or ``path/to/file.py:callable``)."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise LoadError("cannot load implementation {!r}: use module:callable or "
                        "path/to/file.py:callable".format(spec))
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = os.path.abspath(where)
        if not os.path.isfile(path):
            raise LoadError("cannot load implementation {!r}: no file {}".format(spec, where))
        name = "_neuronspec_served_impl_{}".format(abs(hash(path)))
        folder = os.path.dirname(path)
        if folder not in sys.path:  # as `python file.py` would: modules beside it import
            sys.path.insert(0, folder)
        try:
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            sys.modules.pop(name, None)
            raise LoadError("cannot load implementation {!r}: importing {} raised {}: {}".format(
                spec, where, type(exc).__name__, _one_line(exc))) from None
        origin = where
    else:
        try:
            module = importlib.import_module(where)
        except (Exception, SystemExit) as exc:
            raise LoadError("cannot load implementation {!r}: importing {} raised {}: {}".format(
                spec, where, type(exc).__name__, _one_line(exc))) from None
        origin = where
    step = getattr(module, attr, None)
    if step is None or not callable(step):
        raise LoadError("cannot load implementation {!r}: {} has no callable {!r}".format(
            spec, origin, attr))
    forms = Forms(step)
    for suffix in ("run", "from"):  # protocol/2's run forms, found beside the step callable
        form = getattr(module, "{}_{}".format(attr, suffix), None)
        if form is not None and not callable(form):
            raise LoadError("cannot load implementation {!r}: its {}_{} is a {}, not "
                            "callable".format(spec, attr, suffix, type(form).__name__))
        setattr(forms, suffix, form)
    return forms


class Forms:
    """The callables served: the step, and the run forms where the module offers them."""

    def __init__(self, step):
        self.step, self.run, self.__dict__["from"] = step, None, None


def _describe(exc):
    """'TypeName: message' for an exception (a KeyError's message without its quotes)."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        message = exc.args[0]
    else:
        message = str(exc)
    return "{}: {}".format(type(exc).__name__, _one_line(message)) if message \
        else type(exc).__name__


def _input(inputs, name):
    if not isinstance(inputs, Mapping):
        raise TypeError("inputs is a {}, not an object".format(type(inputs).__name__))
    if name not in inputs:
        raise KeyError("inputs has no {!r}".format(name))
    entry = inputs[name]
    if not isinstance(entry, Mapping):
        raise TypeError("input {} is a {}, not an object".format(name, type(entry).__name__))
    if "hex" in entry:
        text = entry["hex"]
        if not isinstance(text, str):
            raise TypeError("input {}: hex is a {}, not a string".format(
                name, type(text).__name__))
        value = float.fromhex(text)
    elif "decimal" in entry:
        text = entry["decimal"]
        if not isinstance(text, str):
            raise TypeError("input {}: decimal is a {}, not a string".format(
                name, type(text).__name__))
        value = float(text)  # exact: the decimal is the exact expansion of a binary value
    else:
        raise KeyError("input {} has no 'hex' (nor 'decimal')".format(name))
    if not math.isfinite(value):
        raise ValueError("input {} = {!r} is not finite".format(name, text))
    return value


def _text(value):
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return value.hex()


def _outputs(result, required=REQUIRED):
    if not isinstance(result, Mapping):
        raise TypeError("step returned {}, not a mapping of {}".format(
            type(result).__name__, ", ".join(required)))
    missing = [key for key in required if key not in result]
    if missing:
        raise KeyError("step returned no {} (it must return {})".format(
            ", ".join(missing), ", ".join(required)))
    outputs = {}
    for key in required + tuple(k for k in OPTIONAL if k in result):
        if result[key] is None and key.startswith("buf_"):
            outputs[key] = None  # no buffer
            continue
        try:
            if isinstance(result[key], complex) or "complex" in type(result[key]).__name__:
                raise TypeError("a complex number is not a value of a binary format")
            value = float(result[key])
        except Exception as exc:
            raise _Rejected("{}: step returned {} = {}, which float() rejects ({})".format(
                type(exc).__name__, key, _one_line(repr(result[key]))[:200], _one_line(exc)))
        outputs[key] = _text(value)
    return outputs


class _Rejected(Exception):
    """An output float() rejects; the message is already 'TypeName: message'."""


def handle(step, raw):
    """The response (a dict) to one request line (bytes), or None for the hello / a blank."""
    if isinstance(step, Forms):
        responses = list(responses_to(step, raw))
        return responses[0] if responses else None
    return _handle_step(step, raw)


def responses_to(forms, raw):
    """The responses to one request line, in order (protocol/2: a run answers one line per
    step, written as the run callable yields each)."""
    try:
        request = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        request = None
    kind = request.get("type") if isinstance(request, dict) and "id" in request else None
    if kind is None:
        response = _handle_step(forms.step, raw)
        if response is not None:
            yield response
        return
    rid = request["id"]
    if kind == "run":
        yield from _run(forms, rid, request)
    elif kind == "step-from":
        yield _step_from(forms, rid, request)
    else:
        yield {"id": rid, "unsupported": "unknown request type {}".format(_one_line(kind))}


def _options(request):
    options = request.get("options")
    if not isinstance(options, Mapping):
        raise TypeError("request has no 'options' object")
    out = {}
    for key, value in options.items():
        out[key] = _input(options, key) if key in OPTION_VALUES else value
    return out


def _state(state):
    if not isinstance(state, Mapping):
        raise TypeError("state is not an object")
    out = {k: _input(state, k) for k in ("w", "b")}
    for k in ("buf_w", "buf_b"):
        out[k] = None if state.get(k) is None else _input(state, k)
    return out


def _run(forms, rid, request):
    """The lines answering a run: one per step, or one ``unsupported``/``failure``."""
    if forms.run is None:
        yield {"id": rid, "unsupported": "offers no step_run"}
        return
    try:
        fmt = request["format"]
        init = request["init"]
        w0, b0 = _input(init, "w"), _input(init, "b")
        data = [tuple(_input(s.get("inputs", s) if isinstance(s, Mapping) else s, k)
                      for k in ("x", "t", "lr")) for s in request["steps"]]
        options = _options(request)
    except Exception as exc:
        yield {"id": rid, "step": 1, "failure": _describe(exc)}
        return
    k = 0
    try:
        for k, result in enumerate(forms.run(w0, b0, data, options, fmt), 1):
            if k > len(data):
                yield {"id": rid, "step": k, "failure": "more steps than data"}
                return
            try:
                yield {"id": rid, "step": k, "outputs": _outputs(result, STEP_QUANTITIES)}
            except Exception as exc:
                yield {"id": rid, "step": k, "failure": str(exc) if isinstance(
                    exc, _Rejected) else _describe(exc)}
                return
    except NotImplementedError as exc:
        if k == 0:
            yield {"id": rid, "unsupported": _one_line(exc) or "options not supported"}
        else:
            yield {"id": rid, "step": k + 1, "failure": "NotImplementedError at step {}: "
                   "{}".format(k + 1, _one_line(exc))}
        return
    except ArithmeticError as exc:
        yield {"id": rid, "step": k + 1, "error": _describe(exc)}
        return
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        yield {"id": rid, "step": k + 1, "failure": _describe(exc)}
        return
    if k < len(data):
        yield {"id": rid, "step": k + 1, "failure": "{} steps for {} steps of data".format(
            k, len(data))}


def _step_from(forms, rid, request):
    if forms.__dict__["from"] is None:
        return {"id": rid, "unsupported": "offers no step_from"}
    try:
        fmt = request["format"]
        state = _state(request["state"])
        x, t, lr = (_input(request["inputs"], k) for k in ("x", "t", "lr"))
        options = _options(request)
    except Exception as exc:
        return {"id": rid, "failure": _describe(exc)}
    try:
        result = forms.__dict__["from"](state, x, t, lr, options, fmt)
        return {"id": rid, "outputs": _outputs(result, STEP_QUANTITIES)}
    except NotImplementedError as exc:
        return {"id": rid, "unsupported": _one_line(exc) or "options not supported"}
    except ArithmeticError as exc:
        return {"id": rid, "error": _describe(exc)}
    except _Rejected as exc:
        return {"id": rid, "failure": str(exc)}
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        return {"id": rid, "failure": _describe(exc)}


def _handle_step(step, raw):
    """A version-1 request's response (a dict), or None for the hello / a blank."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {"id": "", "failure": _describe(exc)}
    if not text.strip():
        return None
    try:
        request = json.loads(text)
    except ValueError as exc:
        return {"id": "", "failure": _describe(exc)}
    if not isinstance(request, dict):
        return {"id": "", "failure": "TypeError: request is a {}, not a JSON object".format(
            type(request).__name__)}
    if "id" not in request:
        if "protocol" in request:  # the hello: no response
            if request["protocol"] not in PROTOCOLS:
                print("serve.py: warning: the checker speaks {!r}; this server speaks {}"
                      .format(request["protocol"], " and ".join(PROTOCOLS)), file=sys.stderr)
            return None
        return {"id": "", "failure": "KeyError: request has no 'id'"}
    rid = request["id"]
    try:
        if "format" not in request:
            raise KeyError("request has no 'format'")
        if "inputs" not in request:
            raise KeyError("request has no 'inputs'")
        fmt = request["format"]
        values = [_input(request["inputs"], name) for name in INPUTS]
    except Exception as exc:
        return {"id": rid, "failure": _describe(exc)}
    try:
        result = step(*values, fmt)
    except NotImplementedError as exc:
        return {"id": rid, "unsupported": _one_line(exc) or "{} is not supported".format(fmt)}
    except ArithmeticError as exc:  # overflow & co: allowed outside the bounded domain
        return {"id": rid, "error": _describe(exc)}
    except (Exception, SystemExit, KeyboardInterrupt) as exc:  # the step ends nothing
        return {"id": rid, "failure": _describe(exc)}
    try:
        return {"id": rid, "outputs": _outputs(result)}
    except _Rejected as exc:
        return {"id": rid, "failure": str(exc)}
    except Exception as exc:
        return {"id": rid, "failure": _describe(exc)}


def _protocol_stream():
    """A text stream on the original standard output; fd 1 and sys.stdout then go to stderr,
    so that what the implementation prints cannot break the protocol."""
    sys.stdout.flush()
    try:
        fd = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no usable stderr: keep stdout as it is
        return sys.stdout
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", encoding="utf-8", newline="\n")


def _watch_parent():
    """End this server when the process that started it is gone (killed, say): nobody reads
    its answers any more, and a step that hangs must not keep it running."""
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if len(args) != 1:
        print("serve.py: " + USAGE, file=sys.stderr)
        return 2
    # Run as a script, sys.path[0] is this file's folder; import from the current directory
    # instead, as `python -m` does (this folder may hold modules that shadow the user's).
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        sys.path[0] = os.getcwd()
    out = _protocol_stream()
    threading.Thread(target=_watch_parent, daemon=True).start()
    try:
        forms = load(args[0])
    except LoadError as exc:
        print("serve.py: " + _one_line(exc), file=sys.stderr)
        return 2
    print(READY + args[0], file=sys.stderr, flush=True)  # loaded: requests are answered now
    stdin = sys.stdin.buffer
    try:
        while True:
            raw = stdin.readline()
            if not raw:
                return 0
            for response in responses_to(forms, raw):
                out.write(json.dumps(response) + "\n")
                out.flush()
    except BrokenPipeError:  # the checker went away
        try:
            sys.stderr.write("serve.py: standard output closed\n")
        except Exception:
            pass
        os._exit(0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
