"""SGD Nesterov momentum with the previous buffer: the direction is g + momentum*buf_{k-1} (an absent buffer read as zero), not g + momentum*buf_k.

Comes from writing Nesterov's look-ahead with the buffer before its update; torch adds
the new buffer (spec/neuron.md 8.2 item 4).  The buffers are right; the parameters are
off from step 1 (direction g_1 instead of (1 + momentum)*g_1).

The rest is torch 2.13.0's ``_single_tensor_sgd`` (spec/neuron.md 8.2) in numpy scalars of the
format, each operation rounded on its own; ``step`` (every option off) is correct.
"""

from _sgd import forms, to

DESCRIPTION = "SGD Nesterov momentum with the previous buffer: the direction is g + momentum*buf_{k-1} (an absent buffer read as zero), not g + momentum*buf_k."


def _direction(h, theta, g, old, buf):
    old = to(h["dtype"], 0.0) if old is None else old  # an absent buffer read as zero
    return g + h["mu_f"] * old if h["nesterov"] else buf  # BUG: the previous buffer


step, step_run, step_from = forms(direction=_direction)
