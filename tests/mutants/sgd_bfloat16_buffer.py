"""SGD momentum buffer silently kept in bfloat16 for float32 parameters (an undeclared narrower buffer format).

Comes from allocating optimiser state in a memory-saving dtype without declaring it
(buffer_format says float32).  The buffer is rounded to bfloat16 whenever it is stored and
the direction reads the stored value.  Exposed at step 1 when g_1 is not a bfloat16 value.
Other formats are correct.

The rest is torch 2.13.0's ``_single_tensor_sgd`` (spec/neuron.md 8.2) in numpy scalars of the
format, each operation rounded on its own; ``step`` (every option off) is correct.
"""

import numpy as np

from _sgd import buffer, forms, to

DESCRIPTION = "SGD momentum buffer silently kept in bfloat16 for float32 parameters (an undeclared narrower buffer format)."


def _buffer(h, g, buf):
    buf = buffer(h, g, buf)
    if h["dtype"] == "float32":
        buf = np.float32(to("bfloat16", buf))  # BUG: the buffer stored in bfloat16
    return buf


step, step_run, step_from = forms(buffer=_buffer)
