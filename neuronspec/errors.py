"""The exceptions neuronspec raises: one root, a few children.

Every error the command line can meet derives from :class:`NeuronspecError` and carries a
one-line message that names the problem and the fix; ``neuronspec.cli`` catches the root in one
place and exits 2 with that line.  What an implementation under test does wrong on a case is
not an error of the run but a finding (:class:`ImplementationError`), reported with the case.
"""

from __future__ import annotations

__all__ = ["NeuronspecError", "UsageError", "LoadError", "DataError", "ImplementationError",
           "ProcessGaveUp", "WorkerDied", "Interrupted"]


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
    which is allowed where a quantity of the case is outside the bounded domain; ``step``: in a
    run of SGD with options, the step it belongs to (0: not a run)."""

    def __init__(self, message: str, *, overflow: bool = False, step: int = 0) -> None:
        super().__init__(message)
        self.overflow = overflow
        self.step = step


class ProcessGaveUp(NeuronspecError):
    """An implementation's process failed to start or restart several times in a row (it
    crashed, hung or exited on every case): the run stops, with what it had found."""


class WorkerDied(NeuronspecError):
    """A worker process of a campaign ended without returning its chunk."""


class Interrupted(KeyboardInterrupt):
    """Not an error: the run was stopped by a signal (SIGINT, SIGTERM).  Runs catch it to
    report what they found so far, marked interrupted; the command exits with ``status``
    (130, 143).  It derives from KeyboardInterrupt, so that nothing that catches errors (an
    implementation's wrapper, hypothesis) mistakes it for a failure."""

    def __init__(self, signal_name: str, status: int) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name, self.status = signal_name, status
