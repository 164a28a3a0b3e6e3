"""SGD maximize ignored: the step descends whatever maximize says.

Comes from an optimiser wrapper that accepts the maximize flag and never passes it on.
Exposed at step 1 when the gradient is not zero: parameters (and buffers).

The rest is torch 2.13.0's ``_single_tensor_sgd`` (spec/neuron.md 8.2) in numpy scalars of the
format, each operation rounded on its own; ``step`` (every option off) is correct.
"""

from _sgd import forms, grad

DESCRIPTION = "SGD maximize ignored: the step descends whatever maximize says."


def _grad(h, theta, G):
    return grad(dict(h, maximize=False), theta, G)  # BUG: maximize ignored


step, step_run, step_from = forms(grad=_grad)
