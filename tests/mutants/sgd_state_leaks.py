"""SGD momentum buffer leaking from one run into the next: the buffers are kept in a module global, so a later run does not start from an empty state.

Comes from an optimiser (or its momentum_buffer) created once at import and reused by every
call.  A fresh import's first run is right; a later run's step 1 computes
momentum*buf_old + (1 - dampening)*g_1 instead of g_1 when the earlier run left
momentum*buf != 0.  Call ``reset()`` to clear the buffers.

The rest is torch 2.13.0's ``_single_tensor_sgd`` (spec/neuron.md 8.2) in numpy scalars of the
format, each operation rounded on its own; ``step`` (every option off) is correct.
"""

from _sgd import forms, hyper

DESCRIPTION = "SGD momentum buffer leaking from one run into the next: the buffers are kept in a module global, so a later run does not start from an empty state."

_kept = {"w": None, "b": None}  # the momentum buffers (Python floats) of the last step


def reset():
    """Clear the buffers (the state a fresh import has)."""
    _kept["w"] = _kept["b"] = None


_, _, _correct_from = forms()


def _leaky_from(state, x, t, lr, options, dtype="float32"):
    """One step from ``state`` = {w, b, buf_w, buf_b}, an absent buffer taken from ``_kept``."""
    h = hyper(options, dtype)
    if h["mu"] != 0:
        state = dict(state)
        for name in ("w", "b"):
            if state.get(f"buf_{name}") is None and _kept[name] is not None:
                state[f"buf_{name}"] = _kept[name]  # BUG: the buffer of an earlier run
    out = _correct_from(state, x, t, lr, options, dtype)
    if h["mu"] != 0:
        _kept["w"], _kept["b"] = float(out["buf_w"]), float(out["buf_b"])
    return out


step, step_run, step_from = forms(step_from=_leaky_from)
