"""optax's SGD with add_decayed_weights placed before the trace, declared as optax-decay-after (the decay between the trace and scale).

Comes from writing ``chain(add_decayed_weights(wd), sgd(...))`` while declaring the
convention of ``chain(trace(...), add_decayed_weights(wd), scale(-lr))``
(spec/neuron.md 8.6: the convention says which side the decay is on).
Exposed at step 1 when wd*theta != 0: buf_w, buf_b hold g_1 + wd*theta instead of g_1.

The rest is optax's chain in numpy scalars of the format, each operation rounded on its own;
without weight decay it is correct, and ``step`` (every option off) is correct.
"""

from _sgd import convention_hyper, forms

DESCRIPTION = "optax's SGD with add_decayed_weights placed before the trace, declared as optax-decay-after (the decay between the trace and scale)."


def _update(h, theta, G, t, lr):
    """One parameter's update: (theta_new, trace or None)."""
    g = G + h["wd_f"] * theta if h["wd"] != 0 else G  # BUG: the decay before the trace
    if h["mu"] == 0:
        return theta + (-lr) * g, None
    t = h["zero"] if t is None else t
    t = g + h["mu_f"] * t                       # trace: g + decay * t
    u = g + h["mu_f"] * t if h["nesterov"] else t
    return theta + (-lr) * u, t


step, step_run, step_from = forms(hyper=convention_hyper("optax-decay-after"), update=_update)
