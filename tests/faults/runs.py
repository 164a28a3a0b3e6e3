"""Run implementations that misbehave at step 2 (tests/test_run_check.py): each NAME is a
correct plain step with a ``NAME_run`` that computes step 1 correctly (the numpy algorithm),
then crashes, hangs, exits, returns garbage or stops short."""

import os
import time

from neuronspec.implementations.bundled import numpy_scalar

_correct = numpy_scalar.step_run


def _after_one(bad):
    def run(w0, b0, data, options, dtype):
        for k, out in enumerate(_correct(w0, b0, data, options, dtype), 1):
            if k == 2:
                yield bad(out)
                return
            yield out
    return run


def _raise(out):
    raise RuntimeError("the optimiser lost its state")


def _hang(out):
    time.sleep(3600)


def _exit(out):
    os._exit(3)


def _overflow(out):
    raise OverflowError("pretends to overflow where nothing may")


crash = hang = leave = garbage = short = overflow = numpy_scalar.step
plain = numpy_scalar.step  # (a correct step and no plain_run: runs are not offered)
only_runs = numpy_scalar.step  # correct runs, and no only_runs_from
only_runs_run = numpy_scalar.step_run
crash_run = _after_one(_raise)
hang_run = _after_one(_hang)
leave_run = _after_one(_exit)
garbage_run = _after_one(lambda out: dict(out, w_new="twelve"))
overflow_run = _after_one(_overflow)


def short_run(w0, b0, data, options, dtype):
    return list(_correct(w0, b0, data, options, dtype))[:1]


# correct runs, and a step_from that forgets the buffers it is given (a from-state form that
# never sets the optimiser's momentum_buffer): only the property step-from sees it
forgets = numpy_scalar.step
forgets_run = numpy_scalar.step_run


def forgets_from(state, x, t, lr, options, dtype):
    return numpy_scalar.step_from(dict(state, buf_w=None, buf_b=None), x, t, lr, options, dtype)
