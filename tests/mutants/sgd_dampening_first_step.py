"""SGD dampening applied on the first step: the buffer starts at zero and the general rule gives buf_1 = (1 - dampening)*g_1.

Comes from initialising the momentum buffer to zeros and updating it by the general rule
at every step; torch copies the first gradient into the buffer undampened (spec/neuron.md
8.2 item 3).  Exposed at step 1 when dampening*g_1 != 0, in the buffers and parameters.

The rest is torch 2.13.0's ``_single_tensor_sgd`` (spec/neuron.md 8.2) in numpy scalars of the
format, each operation rounded on its own; ``step`` (every option off) is correct.
"""

from _sgd import buffer, forms, to

DESCRIPTION = "SGD dampening applied on the first step: the buffer starts at zero and the general rule gives buf_1 = (1 - dampening)*g_1."


def _buffer(h, g, buf):
    if buf is None:
        buf = to(h["dtype"], 0.0)               # BUG: a zero buffer, then the general rule
    return buffer(h, g, buf)                    # buf.mul_(mu).add_(grad, alpha=1 - tau)


step, step_run, step_from = forms(buffer=_buffer)
