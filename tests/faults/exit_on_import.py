"""An implementation whose module ends the process while it is being imported."""
import sys

sys.exit(0)


def step(w, b, x, t, lr, dtype):  # never reached
    raise AssertionError
