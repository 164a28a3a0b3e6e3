"""SGD in Keras's velocity form (v = momentum*v - lr*G) with v reported as the momentum buffer under the torch convention.

Comes from wrapping keras.optimizers.SGD and reporting its momentum variable as torch's
buffer (spec/neuron.md 8.6: v = -lr*buf only under K1); the convention declared is torch's.
Keras has no dampening, maximize or coupled weight decay: those option sets are declined.
Exposed at step 1 when g_1 != 0: the buffers hold -lr*g_1 instead of g_1.

The rest is Keras's update in numpy scalars of the format, each operation rounded on its own;
without momentum it is torch's step, and ``step`` (every option off) is correct.
"""

from _sgd import forms, hyper, to

DESCRIPTION = "SGD in Keras's velocity form (v = momentum*v - lr*G) with v reported as the momentum buffer under the torch convention."


def _hyper(options, dtype):
    h = hyper(options, dtype)
    if h["tau"] != 0 or h["wd"] != 0 or h["maximize"]:
        raise NotImplementedError("keras's SGD has no dampening, coupled weight decay or maximize")
    return h


def _update(h, theta, G, buf, lr):
    """One parameter's update from its gradient ``G``: (theta_new, velocity or None)."""
    if h["mu"] == 0:
        return theta - lr * G, None
    v = to(h["dtype"], 0.0) if buf is None else buf  # keras: the velocity starts at zero
    v = h["mu_f"] * v - lr * G                  # m.assign(m*momentum - gradient*learning_rate)
    if h["nesterov"]:
        return theta + h["mu_f"] * v - lr * G, v
    return theta + v, v                         # BUG: v reported where torch's buffer belongs


step, step_run, step_from = forms(hyper=_hyper, update=_update)
