"""SGD dampening used where 1 - dampening belongs: buf = momentum*buf + dampening*g from the second step.

Comes from reading torch's ``alpha=1 - dampening`` as ``alpha=dampening``.  The first
step (a copy) is right; exposed at step 2 when (1 - 2*dampening)*g_2 != 0, in the buffers
and the parameters.

The rest is torch 2.13.0's ``_single_tensor_sgd`` (spec/neuron.md 8.2) in numpy scalars of the
format, each operation rounded on its own; ``step`` (every option off) is correct.
"""

from _sgd import forms, hyper, to

DESCRIPTION = "SGD dampening used where 1 - dampening belongs: buf = momentum*buf + dampening*g from the second step."


def _hyper(options, dtype):
    h = hyper(options, dtype)
    # BUG: the constant of the buffer's add is tau, not 1 - tau
    h["c_f"] = to(dtype, h["tau"])
    return h


step, step_run, step_from = forms(hyper=_hyper)
