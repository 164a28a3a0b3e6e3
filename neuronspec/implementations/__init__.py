"""The implementations under test: loading them (``load``), driving a program in any language
over the JSON-lines protocol (``process``), serving a Python one over that protocol with the
standard library alone (``serve``), and the implementations bundled with neuronspec
(``bundled``).

The step protocol, which third-party implementations follow::

    step(w, b, x, t, lr, dtype) -> mapping with keys y, loss, dL_dw, dL_db, w_new, b_new
                                    (optionally dL_dy); values real numbers (float() of
                                    them; a complex value is refused)

``dtype`` is a format name ("float16", "bfloat16", "float32", "float64"); the inputs are Python
floats holding values of that format; an unsupported format raises ``NotImplementedError``.

The batch protocol, used by ``neuronspec sweep`` where offered::

    step_batch(w, b, x, t, lr, dtype) -> mapping with the same keys, values numpy arrays

with ``w, b, x, t, lr`` 1-D numpy float64 arrays of equal length holding values of the format
(one case per element); the returned arrays may have any float dtype that holds the format's
values.  The arrays are copies: the implementation may update them in place, the checker judges
the inputs it generated.  A callable ``module:name`` finds its batch version as ``name_batch``
next to it.  Implementations under test never import the reference.

The checker never runs an implementation in its own process: ``check``, ``replay`` and
``vectors run`` serve it from a child process (``supervised``: a per-call timeout, a crash or
an exit is a failure of that case), ``sweep`` runs its chunks in supervised workers.
"""

from .bundled import BUNDLED
from .load import BatchOutputs, Implementation, load, supervised

__all__ = ["Implementation", "BatchOutputs", "load", "supervised", "BUNDLED"]
