"""SGD weight decay added after momentum: buf = momentum*buf + (1 - dampening)*sigma*G, then the direction gets + weight_decay*theta.

Comes from applying the L2 term to the update instead of the gradient (as some hand-written
loops do); torch adds weight_decay*theta to the gradient before the buffer (spec/neuron.md
8.2 item 2).  Exposed at step 1 in the buffers when weight_decay*theta != 0; with
dampening 0 the parameters agree with the exact step from the reported state.

The rest is torch 2.13.0's ``_single_tensor_sgd`` (spec/neuron.md 8.2) in numpy scalars of the
format, each operation rounded on its own; ``step`` (every option off) is correct.
"""

from _sgd import direction, forms

DESCRIPTION = "SGD weight decay added after momentum: buf = momentum*buf + (1 - dampening)*sigma*G, then the direction gets + weight_decay*theta."


def _grad(h, theta, G):
    g = -G if h["maximize"] else G              # grad = -grads[i] under maximize
    if h["wd"] != 0 and h["mu"] == 0:
        g = g + h["wd_f"] * theta               # (without momentum the order does not matter)
    return g


def _direction(h, theta, g, old, buf):
    d = direction(h, theta, g, old, buf)
    if h["wd"] != 0:
        d = d + h["wd_f"] * theta               # BUG: the decay after the buffer
    return d


step, step_run, step_from = forms(grad=_grad, direction=_direction)
