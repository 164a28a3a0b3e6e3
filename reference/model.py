"""The declared evaluation models: which evaluations of the step an implementation may perform
(fused multiply-add, a ``pow`` for the square, work in a wider format, flush-to-zero, a binary64
learning rate, binary64 hyperparameters of runs).  A model names a *set* of evaluations;
``rounded`` lists them bit for bit (:func:`reference.rounded.admitted`), ``bounds`` bounds their
error, ``judge`` checks a value against either.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .formats import FLOAT32, FLOAT64, X87, Format

__all__ = ["Model", "IEEE", "STRICT", "MODELS", "OPTIONS", "WIDE_FORMAT", "WIDER", "get_model"]

#: Where float16/bfloat16 work may be carried out ("work runs in float32").
WIDE_FORMAT = FLOAT32
#: The wider format each parameter format's work may run in under the ``wide`` option: C's
#: FLT_EVAL_METHOD 1 (float in double; also JavaScript's float32 arithmetic through
#: ``Math.fround``) and 2 (double in x87 extended precision).
WIDER: dict[str, Format] = {"float16": FLOAT32, "bfloat16": FLOAT32, "float32": FLOAT64,
                            "float64": X87}


#: The options a model name may add to ``ieee`` or ``strict``, by the name they take there.
OPTIONS = {"wide": "wide_all", "ftz": "ftz", "lr-binary64": "lr_binary64",
           "hyper-binary64": "hyper_binary64"}


@dataclass(frozen=True)
class Model:
    """A declared evaluation model: the set of evaluations a bound must cover.

    pow_square:  the square r*r may be off by up to one ulp (CPython's ``**`` calls ``pow``,
                 which is not correctly rounded); False: r*r is correctly rounded.
    wide_work:   float16/bfloat16 operations may be computed in float32 and rounded to the format
                 after each operation (double rounding) or only when a result is stored.
    wide_all:    the same for every format in the next wider one (:data:`WIDER`): float32 in
                 binary64, float64 in x87 extended precision (the ``wide`` option).
    ftz:         subnormal inputs may be read as zero and subnormal results flushed to zero.
    lr_binary64: lr may be any binary64 value while the parameters are narrower; the
                 implementation may round it to the parameter format first or use it as given.
    hyper_binary64: momentum, dampening and weight_decay of a run may be any binary64 values
                 while the parameters are narrower (spec/neuron.md 8.1); each node may use a
                 constant as given or rounded (8.3).  The plain step has none of them.

    Fused multiply-add in the forward pass and in the update is always admitted: its single
    rounding is covered by the bound of the two-rounding evaluation.  So is autograd's
    gradient 0.5*(2*r), whose 2*r may overflow where r does not.
    """

    name: str
    pow_square: bool = True
    wide_work: bool = True
    ftz: bool = False
    lr_binary64: bool = False
    wide_all: bool = False
    hyper_binary64: bool = False

    def with_options(self, **options: bool) -> "Model":
        labels = {v: k for k, v in OPTIONS.items()}
        name = "+".join([self.name] + [labels[k] for k in OPTIONS.values()
                                       if options.get(k)])
        return replace(self, name=name, **options)

    def describe(self) -> str:
        parts = ["r*r within one ulp (pow)" if self.pow_square else "r*r correctly rounded",
                 "work may run in the next wider format (float16/bfloat16 in float32, float32 "
                 "in binary64, float64 in x87 extended)" if self.wide_all else
                 "float16/bfloat16 work may run in float32" if self.wide_work
                 else "every operation rounds to the format",
                 "fused multiply-add allowed"]
        if self.ftz:
            parts.append("subnormals may be flushed to zero")
        if self.lr_binary64:
            parts.append("lr may be a binary64 value, used as given or rounded")
        if self.hyper_binary64:
            parts.append("momentum, dampening and weight_decay may be binary64 values, used as "
                         "given or rounded")
        return "; ".join(parts)

    def wide_format(self, fmt: Format) -> "Format | None":
        """The wider format work in ``fmt`` may run in under this model, or None."""
        if self.wide_all:
            return WIDER[fmt.name]
        if self.wide_work and fmt.p < WIDE_FORMAT.p:
            return WIDE_FORMAT
        return None

    def wide(self, fmt: Format) -> bool:
        """Whether work in ``fmt`` may run in a wider format under this model."""
        return self.wide_format(fmt) is not None


IEEE = Model("ieee")
STRICT = Model("strict", pow_square=False, wide_work=False)
#: The models listed in help texts and tables; any base with any options is accepted.
MODELS: dict[str, Model] = {
    m.name: m
    for m in (IEEE, STRICT, IEEE.with_options(ftz=True), IEEE.with_options(lr_binary64=True),
              IEEE.with_options(ftz=True, lr_binary64=True), IEEE.with_options(wide_all=True))
}


def get_model(model: "Model | str") -> Model:
    """A model by name: ``ieee`` or ``strict``, then any of the options ``+wide``, ``+ftz``,
    ``+lr-binary64``, ``+hyper-binary64`` (in any order)."""
    if isinstance(model, Model):
        return model
    if model in MODELS:
        return MODELS[model]
    base, *options = str(model).split("+")
    bases = {"ieee": IEEE, "strict": STRICT}
    unknown = [o for o in options if o not in OPTIONS]
    if base not in bases or unknown or len(set(options)) != len(options) or not options:
        raise ValueError(f"unknown model {model!r}; choose ieee or strict, with any of the "
                         f"options {', '.join('+' + o for o in OPTIONS)} (e.g. ieee+wide+ftz)")
    return bases[base].with_options(**{OPTIONS[o]: True for o in options})
