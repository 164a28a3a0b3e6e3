"""Implementations under test that misbehave on purpose, one fault each (tests/test_faults.py).

Each callable is the step protocol's ``step(w, b, x, t, lr, dtype)`` in binary64; a
``name_batch`` beside it is its batch version.  The faults are those a checker meets in the
wild or from an attacker: ending the process, hanging, crashing in native code, changing the
inputs it is handed, answering what is not a real number, printing on standard output.
"""

import math
import os
import signal
import sys
import time

import numpy as np


def _step(w, b, x, t, lr, dtype):
    """The correct step in binary64 (arrays or floats): one rounding per operation."""
    if dtype != "float64":
        raise NotImplementedError(f"these subjects compute in float64 only, not {dtype}")
    y = w * x + b
    r = y - t
    g = r * x
    return {"y": y, "dL_dy": r, "loss": 0.5 * (r * r), "dL_dw": g, "dL_db": r,
            "w_new": w - lr * g, "b_new": b - lr * r}


def _called() -> None:
    """One byte appended to the file ``NEURONSPEC_FAULT_CALLS`` names, if set, per call, from
    whichever process calls: what a test waits on before it interrupts a run (not a fixed
    sleep, too short on a loaded machine and too long on an idle one)."""
    path = os.environ.get("NEURONSPEC_FAULT_CALLS")
    if path:
        with open(path, "ab") as f:
            f.write(b".")


def correct(w, b, x, t, lr, dtype):
    return _step(w, b, x, t, lr, dtype)


def correct_batch(w, b, x, t, lr, dtype):
    return _step(w, b, x, t, lr, dtype)


def exit_zero(w, b, x, t, lr, dtype):
    """Ends the process with status 0 (``sys.exit(0)``) on every call."""
    sys.exit(0)


def exit_zero_batch(w, b, x, t, lr, dtype):
    sys.exit(0)


def os_exit(w, b, x, t, lr, dtype):
    """Ends the process at once with status 0, no clean-up (``os._exit(0)``)."""
    os._exit(0)


def os_exit_batch(w, b, x, t, lr, dtype):
    """Answers a single case (the checker's first probe), ends the process on a chunk."""
    if len(w) == 1:
        return _step(w, b, x, t, lr, dtype)
    os._exit(0)


def interrupt(w, b, x, t, lr, dtype):
    """Raises KeyboardInterrupt itself, as if the user had pressed Ctrl-C."""
    raise KeyboardInterrupt


def segfault(w, b, x, t, lr, dtype):
    """A crash in native code: the process dies of SIGSEGV."""
    os.kill(os.getpid(), signal.SIGSEGV)


def segfault_batch(w, b, x, t, lr, dtype):
    """Answers a single case (the checker's first probe), crashes on a chunk."""
    if len(w) == 1:
        return _step(w, b, x, t, lr, dtype)
    os.kill(os.getpid(), signal.SIGSEGV)


def hang(w, b, x, t, lr, dtype):
    """Never returns."""
    if dtype != "float64":
        raise NotImplementedError(dtype)
    _called()
    time.sleep(3600)


def hang_batch(w, b, x, t, lr, dtype):
    time.sleep(3600)


def zeroing(w, b, x, t, lr, dtype):
    return _step(w, b, x, t, lr, dtype)


def zeroing_batch(w, b, x, t, lr, dtype):
    """Zeroes the arrays it is given and returns zeros: right for all-zero inputs."""
    for a in (w, b, x, t, lr):
        a[:] = 0.0
    zeros = np.zeros_like(w)
    return {k: zeros for k in ("y", "dL_dy", "loss", "dL_dw", "dL_db", "w_new", "b_new")}


def in_place(w, b, x, t, lr, dtype):
    return _step(w, b, x, t, lr, dtype)


def in_place_batch(w, b, x, t, lr, dtype):
    """Correct, but updates w and b in place, as optimizers do, and returns them."""
    out = _step(w, b, x, t, lr, dtype)
    w -= lr * out["dL_dw"]
    b -= lr * out["dL_db"]
    return dict(out, w_new=w, b_new=b)


def complex_out(w, b, x, t, lr, dtype):
    """Complex values with the right real part."""
    return {k: complex(v, 1.0) for k, v in _step(w, b, x, t, lr, dtype).items()}


def complex_out_batch(w, b, x, t, lr, dtype):
    return {k: v + 1j for k, v in _step(w, b, x, t, lr, dtype).items()}


def huge_integer(w, b, x, t, lr, dtype):
    """y is an integer that float() cannot hold (OverflowError)."""
    return dict(_step(w, b, x, t, lr, dtype), y=10 ** 400)


def unsupported_midway(w, b, x, t, lr, dtype):
    """Accepts float64, then raises NotImplementedError on cases with x < 0."""
    if x < 0:
        raise NotImplementedError("negative x is not implemented")
    return _step(w, b, x, t, lr, dtype)


def nothing(w, b, x, t, lr, dtype):
    """Supports no format at all."""
    raise NotImplementedError(f"{dtype} is not supported")


def infinite(w, b, x, t, lr, dtype):
    """Supports float64 and answers inf for every quantity."""
    if dtype != "float64":
        raise NotImplementedError(dtype)
    return {k: float("inf") for k in ("y", "dL_dy", "loss", "dL_dw", "dL_db", "w_new", "b_new")}


def noisy(w, b, x, t, lr, dtype):
    """Correct, and prints on standard output (both sys.stdout and file descriptor 1)."""
    print('{"id": "forged", "outputs": {}}')
    os.write(1, b"garbage on fd 1\n")
    return _step(w, b, x, t, lr, dtype)


def markdown(w, b, x, t, lr, dtype):
    """Fails with a message that would break out of a Markdown code block."""
    if dtype != "float64":
        raise NotImplementedError(dtype)
    raise ValueError("```\n# Forged heading\n<script>alert(1)</script> [link](http://x.invalid)")


def slow(w, b, x, t, lr, dtype):
    """Correct, and takes 50 ms a call: a run long enough to be interrupted."""
    time.sleep(0.05)
    _called()
    return _step(w, b, x, t, lr, dtype)


def no_negative_lr(w, b, x, t, lr, dtype):
    """Correct, but declines a negative learning rate, as torch.optim.SGD's check does."""
    if math.copysign(1.0, lr) < 0:
        raise NotImplementedError("a negative learning rate is refused")
    return _step(w, b, x, t, lr, dtype)


def no_negative_lr_batch(w, b, x, t, lr, dtype):
    """The batch version: the cases with a negative learning rate are returned as declined."""
    out = _step(w, b, x, t, lr, dtype)
    return dict(out, declined=np.signbit(lr))


def no_small_lr(w, b, x, t, lr, dtype):
    """Correct, but declines every nonzero learning rate below 1e-3, which it may not."""
    if 0 < abs(lr) < 1e-3:
        raise NotImplementedError("a small learning rate is refused")
    return _step(w, b, x, t, lr, dtype)


def paced(w, b, x, t, lr, dtype):
    """Correct; its batch version takes 0.05 s a call: a sweep that lasts long enough for a
    worker to be lost in the middle of it."""
    return _step(w, b, x, t, lr, dtype)


def paced_batch(w, b, x, t, lr, dtype):
    time.sleep(0.05)
    return _step(w, b, x, t, lr, dtype)
