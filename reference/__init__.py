"""neuronspec: exact reference, number formats, bounds and conformance checks for one
gradient-descent step of a single neuron, y = w*x + b, L = 1/2 (y - t)^2."""

from .bounds import IEEE, MODELS, STRICT, Model, OutOfDomain, case_bounds, step_bounds
from .exact import QUANTITIES, ExactStep, exact_loss, exact_step
from .formats import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, FORMATS, Format, get_format
from .rounded import CANONICAL, VARIANTS, Variant, evaluate

__version__ = "0.1.0"

__all__ = [
    "QUANTITIES", "ExactStep", "exact_step", "exact_loss",
    "Format", "FORMATS", "FLOAT16", "BFLOAT16", "FLOAT32", "FLOAT64", "get_format",
    "Variant", "VARIANTS", "CANONICAL", "evaluate",
    "Model", "MODELS", "IEEE", "STRICT", "OutOfDomain", "step_bounds", "case_bounds",
    "__version__",
]
