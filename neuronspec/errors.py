"""The exceptions neuronspec raises: one root, a few children.

Every error the command line can meet derives from :class:`NeuronspecError` and carries a
one-line message that names the problem and the fix; ``neuronspec.cli`` catches the root in one
place and exits 2 with that line.  What an implementation under test does wrong on a case is
not an error of the run but a finding (:class:`ImplementationError`), reported with the case.
"""

from __future__ import annotations

__all__ = ["NeuronspecError", "UsageError", "LoadError", "DataError", "ImplementationError",
           "ProcessGaveUp", "WorkerDied"]


class NeuronspecError(Exception):
    """The root of every neuronspec exception; its message is one line."""


class UsageError(NeuronspecError, ValueError):
    """An argument or option the user can fix (a format, a model, a case, a path)."""


class LoadError(NeuronspecError, ValueError):
    """An implementation that cannot be loaded or started."""


class DataError(NeuronspecError, ValueError):
    """A vector, results, record or report file that is missing or not what it should be."""


class ImplementationError(NeuronspecError, RuntimeError):
    """An implementation that raised, or returned something unusable, on a case.

    ``overflow``: it raised an overflow (an ArithmeticError, or an error the process reported),
    which is allowed where a quantity of the case is outside the bounded domain."""

    def __init__(self, message: str, *, overflow: bool = False) -> None:
        super().__init__(message)
        self.overflow = overflow


class ProcessGaveUp(ImplementationError):
    """A protocol process failed to start or restart several times in a row: the run stops."""


class WorkerDied(NeuronspecError):
    """A worker process of a campaign ended without returning its chunk."""
