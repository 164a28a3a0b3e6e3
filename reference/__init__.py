"""The reference for one gradient-descent step of a single neuron, y = w*x + b,
L = 1/2 (y - t)^2: the number formats, the step described once, its exact values, the legal
rounded evaluations, the models and their rigorous error bounds, and the one judge.

It depends on numpy and mpmath only and imports nothing from the ``neuronspec`` tool."""

from .bounds import IEEE, MODELS, STRICT, Model, OutOfDomain, case_bounds, get_model, step_bounds
from .exact import ExactStep, exact_loss, exact_nodes, exact_step
from .formats import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, FORMATS, Format, get_format
from .judge import Judgement, judge, judge_case
from .rounded import ALL_VARIANTS, CANONICAL, VARIANTS, Variant, evaluate, evaluate_variants
from .step import INPUTS, NODES, QUANTITIES, REQUIRED, Case

__all__ = [
    "INPUTS", "QUANTITIES", "REQUIRED", "NODES", "Case",
    "ExactStep", "exact_step", "exact_nodes", "exact_loss",
    "Format", "FORMATS", "FLOAT16", "BFLOAT16", "FLOAT32", "FLOAT64", "get_format",
    "Variant", "VARIANTS", "ALL_VARIANTS", "CANONICAL", "evaluate", "evaluate_variants",
    "Model", "MODELS", "IEEE", "STRICT", "get_model", "OutOfDomain", "step_bounds", "case_bounds",
    "Judgement", "judge", "judge_case",
]
