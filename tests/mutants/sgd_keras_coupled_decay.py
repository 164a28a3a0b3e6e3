"""Keras's SGD with the weight decay coupled (added to the gradient, into the velocity) under the declared keras convention.

Comes from writing Keras's update with torch's L2 term (``g = G + wd*theta``) in place of
Keras's ``_apply_weight_decay`` (``variable - variable * wd * lr`` before the update, never part
of the velocity: spec/neuron.md 8.6).  The parameters agree at step 1 (8.6, "Where they
differ"); the velocity does not: v_1 = -lr*(G + wd*theta) instead of -lr*G.
Exposed at step 1 when wd*theta != 0: buf_w, buf_b.

The rest is Keras's update in numpy scalars of the format, each operation rounded on its own;
without weight decay it is correct, and ``step`` (every option off) is correct.
"""

from _sgd import convention_hyper, forms

DESCRIPTION = "Keras's SGD with the weight decay coupled (added to the gradient, into the velocity) under the declared keras convention."


def _update(h, theta, G, v, lr):
    """One parameter's update: (theta_new, velocity or None)."""
    g = G + theta * h["wd_f"] if h["wd"] != 0 else G  # BUG: torch's L2 term, not decoupled
    if h["mu"] == 0:
        return theta - g * lr, None
    v = h["zero"] if v is None else v
    v = v * h["mu_f"] - g * lr                  # m.assign(m*momentum - gradient*learning_rate)
    if h["nesterov"]:
        return theta + (v * h["mu_f"] - g * lr), v
    return theta + v, v


step, step_run, step_from = forms(hyper=convention_hyper("keras"), update=_update)
