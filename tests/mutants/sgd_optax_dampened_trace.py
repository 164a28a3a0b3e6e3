"""optax's SGD with a dampened trace (t = (1 - mu)*g + mu*t, optax.ema's recurrence) under the declared optax convention.

Comes from building the momentum with ``optax.ema(mu)`` (or torch's dampening with tau = mu)
in place of ``optax.trace(mu)``, whose ``g + decay*t`` does not scale the gradient
(spec/neuron.md 8.6, "Where they differ": ema starts from zero and dampens the first step).
Exposed at step 1 when mu*g_1 != 0: buf_w, buf_b hold (1 - mu)*g_1; w_new, b_new move by
lr*(1 - mu)*g_1.

The rest is optax's chain in numpy scalars of the format, each operation rounded on its own;
without momentum it is correct, and ``step`` (every option off) is correct.
"""

from _sgd import convention_hyper, forms, to

DESCRIPTION = "optax's SGD with a dampened trace (t = (1 - mu)*g + mu*t, optax.ema's recurrence) under the declared optax convention."


def _update(h, theta, G, t, lr):
    """One parameter's update: (theta_new, trace or None)."""
    g = G + h["wd_f"] * theta if h["wd"] != 0 else G  # add_decayed_weights, before the trace
    if h["mu"] == 0:
        return theta + (-lr) * g, None
    t = h["zero"] if t is None else t
    t = to(h["dtype"], 1.0 - h["mu"]) * g + h["mu_f"] * t  # BUG: ema, not g + decay*t
    u = g + h["mu_f"] * t if h["nesterov"] else t
    return theta + (-lr) * u, t


step, step_run, step_from = forms(hyper=convention_hyper("optax"), update=_update)
