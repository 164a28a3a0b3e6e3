"""SGD maximize applied at the update (theta + lr*direction, torch's earlier order) instead of negating the gradient first.

Comes from the 1.11-era torch code (alpha = lr if maximize else -lr), which also flips the
weight-decay term; torch 2.13.0 negates the raw gradient before the decay (spec/neuron.md
8.2 item 1).  The buffers hold G + wd*theta instead of -G + wd*theta from step 1; the
parameters are off by 2*lr*wd*theta only when wd*theta != 0.

The rest is torch 2.13.0's ``_single_tensor_sgd`` (spec/neuron.md 8.2) in numpy scalars of the
format, each operation rounded on its own; ``step`` (every option off) is correct.
"""

from _sgd import forms, grad

DESCRIPTION = "SGD maximize applied at the update (theta + lr*direction, torch's earlier order) instead of negating the gradient first."


def _grad(h, theta, G):
    return grad(dict(h, maximize=False), theta, G)  # BUG: maximize left for the update


def _apply(h, theta, lr, d):
    return theta + lr * d if h["maximize"] else theta - lr * d


step, step_run, step_from = forms(grad=_grad, apply=_apply)
