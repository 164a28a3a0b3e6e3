"""The bound of every quantity of one step of a run (spec/tolerances.md 2.8): the plain step's
chain (``bounds.bound_chain``) continued over the optimiser's nodes (the declared convention's
table, ``optim.CONVENTIONS``), with the same lemmas and the same :class:`bounds.Chain` methods,
in exact integer arithmetic (``bounds.DyadicArithmetic``) for every format.

The inputs of a step of a run are the state the implementation reported, the data and the
hyperparameters; a bound never compounds over a run.  What an evaluation may do to them enters
the propagation lemma as input errors (spec/tolerances.md 2.8): the constant ``c = 1 - tau``
rounded on its way to the kernel (binary64, float32, the format: :func:`constant_roundings`);
under hyper-binary64 each node's admitted roundings of momentum and weight decay
(:func:`node_constants`, :func:`hyper_errors`); under lr-binary64 the roundings of ``lr``
(:func:`lr_paths`, :func:`lr_error`); under ftz the inputs, state and constants read as zero
(:func:`flush_errors`).  Without those options every input but ``c`` is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping

from .bounds import (DYADIC_ARITHMETIC, Bound, Chain, OutOfDomain, bound_chain,
                     flush_error, rounding_spread)
from .dyadic import Dyadic, dyadic, dyadic_nodes
from .formats import FLOAT32, FLOAT64, Format, get_format, to_fraction
from .model import Model, get_model
from .optim import (PARAMETERS, STEP_QUANTITIES, UPDATED, Options, State, DYADIC,
                    parameter_nodes, resolve_alias)
from .step import ANCESTORS, INPUTS, NODE_OF, OPS, REQUIRED

__all__ = ["sgd_bounds", "run_chain", "constant_errors", "constant_roundings",
           "check_run_model", "RUN_QUANTITIES", "buffer_format", "buffer_momenta",
           "holds", "node_constants", "hyper_errors", "lr_paths", "lr_error", "flush_errors"]

#: The quantities a step of a run is judged on (dL_dy where reported, as dL_db).
RUN_QUANTITIES = STEP_QUANTITIES + ("dL_dy",)

#: How each optimiser operation rounds (``bounds.rounding_term``'s kinds).
_KINDS = {"mul": OPS["mul"], "add": OPS["add"], "sub": OPS["sub"]}


@dataclass(frozen=True)
class _Described:
    """An optimiser node as ``Chain.node`` reads one: its kind of rounding and its text."""

    kind: str
    text: str


def check_run_model(model: "Model | str", fmt: Format, options: "Options | None" = None
                    ) -> Model:
    """``model`` (by name or given): runs are covered under every model, the options
    hyper-binary64, lr-binary64 and ftz under the torch convention only (a ValueError for
    another convention's ``options``, or for an unknown name)."""
    model = get_model(model)
    if options is not None and options.convention != "torch" and \
            (model.hyper_binary64 or model.lr_binary64 or model.ftz):
        raise ValueError(f"runs under the {options.convention} convention are checked under "
                         f"ieee and strict (with +wide), not {model.name}: hyper-binary64, "
                         "lr-binary64 and ftz are covered for the torch convention only")
    # (every option is covered: hyper-binary64 by node_constants, lr-binary64 by lr_error and
    # lr_paths, ftz by flush_errors and the evaluations' flushing; the batch path checks its own)
    return model


def constant_roundings(fmt: Format, buffer: "Format | None" = None) -> tuple[Format, ...]:
    """The roundings a binary64 constant (``1 - tau``) may go through on its way to a kernel
    of ``fmt`` (and of the buffer format, whose kernel multiplies by it), in order
    (spec/neuron.md 8.3): binary64 (Python), float32 (torch's scalar conversion for
    float16/bfloat16), the format, the buffer format."""
    formats = [fmt] + ([buffer] if buffer is not None else [])
    chain = [FLOAT64]
    if min(f.p for f in formats) < FLOAT32.p:
        chain.append(FLOAT32)
    for f in formats:
        if f not in chain:
            chain.append(f)
    return tuple(chain)


def rounded_constants(fmt: Format, value: Fraction, buffer: "Format | None" = None,
                      what: str = "1 - dampening") -> list[Fraction]:
    """Every value ``value`` may have after a nonempty subsequence of
    :func:`constant_roundings`, in order (distinct, the exact value excluded unless one
    rounding leaves it so)."""
    chain = constant_roundings(fmt, buffer)
    out: list[Fraction] = []
    for mask in range(1, 1 << len(chain)):
        v = value
        for i, f in enumerate(chain):
            if mask >> i & 1:
                r = f.round(v)
                if not math.isfinite(r):
                    raise ValueError(f"{what} = {float(value)!r} overflows {f.name}")
                v = to_fraction(r)
        if v not in out:
            out.append(v)
    return out


#: The constants hyper-binary64 lets be binary64 values (spec/neuron.md 8.1).
_HYPER = ("momentum", "weight_decay", "dampening")



def buffer_momenta(fmt: Format, options: Options) -> list[Fraction]:
    """The values of the momentum a product ``mu*buf`` in the buffer format may use: as given,
    and rounded to the buffer format where that format does not hold it (an implementation
    converts it to the buffer's type); empty without momentum."""
    if not options.buffered:
        return []
    mu = to_fraction(float(options.momentum))
    rounded = buffer_format(fmt, options).round(mu)
    if not math.isfinite(rounded):
        raise ValueError(f"momentum = {float(mu)!r} overflows the buffer format "
                         f"{buffer_format(fmt, options).name}")
    return [mu] + ([to_fraction(rounded)] if to_fraction(rounded) != mu else [])


def node_constants(fmt: Format, options: Options, model: Model) -> dict[str, list[Fraction]]:
    """Under hyper-binary64 (spec/neuron.md 8.3), the values each node may use for a binary64
    constant, by the evaluation's name of the choice: ``wd`` (the product ``dq``), ``mu`` (the
    Nesterov product ``nm``, in the parameter format) and ``mu_buffer`` (``mb``, in the buffer
    format): each as given or after a nonempty subsequence of :func:`constant_roundings`, so
    torch's ``fl32(mu)`` in ``buf.mul_`` and ``fl_F(fl32(mu))`` as an ``add``'s alpha.  Empty
    under other models (every constant is then a value of the format, used as given)."""
    if not model.hyper_binary64:
        return {}
    B = buffer_format(fmt, options)
    mu = to_fraction(float(options.momentum))
    out = {}
    if float(options.weight_decay) != 0:
        out["wd"] = rounded_constants(fmt, to_fraction(float(options.weight_decay)),
                                      what="weight_decay")
    if options.buffered:
        out["mu_buffer"] = rounded_constants(fmt, mu, B if B != fmt else None, "momentum")
        if options.nesterov:
            out["mu"] = rounded_constants(fmt, mu, what="momentum")
    return out


def hyper_errors(fmt: Format, options: Options, model: Model) -> dict[str, Dyadic]:
    """The input errors of the constants of :func:`node_constants` that are not
    ``mu_buffer`` (which :func:`constant_errors` gives): the largest distance of an admitted
    value from the constant (exactly); empty where every one is used as given."""
    exact = {"wd": options.weight_decay, "mu": options.momentum}
    return {k: max(abs(dyadic(v) - dyadic(exact[k])) for v in values)
            for k, values in node_constants(fmt, options, model).items() if k in exact}


def lr_paths(fmt: Format, model: Model) -> list[tuple[Format, ...]]:
    """Under lr-binary64, the roundings a binary64 ``lr`` may go through before ``lq = lr*dn``
    uses it (spec/neuron.md 8.3: as given, or rounded to the wider work format, to the format,
    or to both in that order: torch's ``alpha=-lr`` is fl_F(fl32(lr)) for float16); else only
    as given."""
    if not model.lr_binary64:
        return [()]
    chain = constant_roundings(fmt)[1:]  # (lr is a binary64 value already)
    return [tuple(f for i, f in enumerate(chain) if mask >> i & 1)
            for mask in range(1 << len(chain))]


def lr_error(A: Any, fmt: Format, model: Model, lr: Any) -> tuple[Any, Any]:
    """(E_lr, whether a rounding overflows): the largest distance from the exact ``lr`` of a
    value :func:`lr_paths` gives, in arithmetic ``A`` (per step on arrays of steps), the input
    error of ``lr`` in ``lq`` (spec/tolerances.md 2.4, 2.8)."""
    ops = A.ops
    error, overflow = A.zero, ops.false
    for path in lr_paths(fmt, model)[1:]:
        v = lr
        for f in path:
            v = A.round(f, v)
        finite = ops.isfinite(v)
        overflow = ops.either(overflow, ops.logical_not(finite))
        error = ops.maximum(error, ops.select(finite, A.distance(v, lr), A.zero))
        if model.ftz and abs(v) < fmt.smallest_normal:  # (read as zero: scalar steps only)
            error = ops.maximum(error, A.distance(0.0, lr))
    return ops.maximum(error, flush_error(A, fmt, model, lr)), overflow


def flush_errors(fmt: Format, options: Options, model: Model, state: State
                 ) -> dict[str, Dyadic]:
    """Under ftz, the input errors of the optimiser's inputs that an evaluation may read as
    zero (a subnormal of the format of the node using it, spec/tolerances.md 1): ``buf_w``,
    ``buf_b`` (in the buffer format), and each constant over its admitted values (``wd``,
    ``mu`` in the format; ``c``, ``mu_buffer`` in the buffer format); empty without ftz."""
    if not model.ftz:
        return {}
    B = buffer_format(fmt, options)
    hyper = node_constants(fmt, options, model)
    c = to_fraction(1) - to_fraction(float(options.dampening))
    admitted = {"wd": (fmt, hyper.get("wd", [options.weight_decay])),
                "mu": (fmt, hyper.get("mu", [options.momentum])),
                "mu_buffer": (B, hyper.get("mu_buffer", buffer_momenta(fmt, options))),
                "c": (B, rounded_constants(fmt, c, B if B != fmt else None)),
                "buf_w": (B, [state.buf_w or 0]), "buf_b": (B, [state.buf_b or 0])}
    A = DYADIC_ARITHMETIC
    return {k: max((flush_error(A, f, model, dyadic(v)) for v in values), default=Dyadic(0))
            for k, (f, values) in admitted.items()}


def buffer_format(fmt: Format, options: Options) -> Format:
    """The format of the buffer: declared, or the parameter format.  Only torch's buffer may
    be declared in another format (keras's velocity is a variable of the parameter's dtype;
    optax's ``accumulator_dtype`` casts the stored trace only, which is not modelled yet)."""
    B = get_format(options.buffer_format) if options.buffer_format else fmt
    if B != fmt and options.convention != "torch":
        raise ValueError(f"a {B.name} buffer with {fmt.name} parameters is checked under the "
                         f"torch convention only, not {options.convention}")
    return B


def holds(wide: Format, narrow: Format) -> bool:
    """Whether every value of ``narrow`` is a value of ``wide`` (a conversion is exact)."""
    return wide.p >= narrow.p and wide.emax >= narrow.emax and \
        wide.emin - wide.p <= narrow.emin - narrow.p


def _check_inputs(fmt: Format, state: State, x, t, lr, options: Options,
                  model: "Model | None" = None) -> None:
    hyper = model is not None and model.hyper_binary64  # (the constants: binary64 values)
    lr64 = model is not None and model.lr_binary64
    for name, value in (("w", state.w), ("b", state.b), ("x", x), ("t", t), ("lr", lr),
                        ("momentum", options.momentum), ("weight_decay", options.weight_decay),
                        ("dampening", options.dampening)):
        binary64 = (hyper and name in _HYPER) or (lr64 and name == "lr")
        (FLOAT64 if binary64 else fmt).check(float(value), name)
    for theta in PARAMETERS:
        buf = state.buffer(theta)
        if buf is not None:
            buffer_format(fmt, options).check(float(buf), f"buf_{theta}")


def sgd_bounds(fmt: "Format | str", state: State, x, t, lr, options: Options,
               model: "Model | str" = "ieee") -> dict[str, "Bound | None"]:
    """Per quantity of :data:`RUN_QUANTITIES`, the bound of one step of a run from ``state``
    (an implementation's reported state): a Fraction, or :class:`bounds.OutOfDomain` where an
    admitted evaluation may overflow on the way; None for a buffer the options do not keep."""
    fmt = get_format(fmt)
    model = check_run_model(model, fmt, options)
    _check_inputs(fmt, state, x, t, lr, options, model)
    A = DYADIC_ARITHMETIC
    values = dyadic_nodes(state.w, state.b, x, t, lr)
    e_c, e_mu = constant_errors(fmt, options, model)
    errors = dict(hyper_errors(fmt, options, model))
    for k, e in flush_errors(fmt, options, model, state).items():  # (ftz: read as zero)
        if k == "c":
            e_c = max(e_c, e)
        elif k == "mu_buffer":
            e_mu = max(e_mu, e)
        else:
            errors[k] = max(errors.get(k, Dyadic(0)), e)
    if model.lr_binary64:
        errors["lr"], overflow = lr_error(A, fmt, model, values["lr"])
        if overflow:
            raise ValueError(f"lr = {float(lr)!r} overflows {fmt.name}; it cannot be used there")
    chain, way, names = run_chain(A, fmt, model, values, state, options, e_c, e_mu, DYADIC,
                                  errors=errors)
    return {q: None if name is None else _bound(chain, A, name, way)
            for q, name in names.items()}


def constant_errors(fmt: Format, options: Options, model: "Model | None" = None
                    ) -> tuple[Dyadic, Dyadic]:
    """(E_c, E_mu): the largest error of ``c = 1 - tau`` over its admitted roundings, and of
    the momentum ``mu*buf`` uses in the buffer format (exactly; under hyper-binary64 over the
    roundings of :func:`node_constants`)."""
    c_exact = dyadic(1) - dyadic(options.dampening)
    B = buffer_format(fmt, options)
    # a momentum the buffer format does not hold: mu*buf may use it rounded there (8.3)
    momenta = node_constants(fmt, options, model).get("mu_buffer") if model else None
    e_mu = max((abs(dyadic(v) - dyadic(options.momentum))
                for v in momenta or buffer_momenta(fmt, options)), default=Dyadic(0))
    e_c = max((abs(dyadic(v) - c_exact) for v in rounded_constants(
        fmt, c_exact.as_fraction(), B if B != fmt else None)), default=Dyadic(0))
    return e_c, e_mu


def run_chain(A: Any, fmt: Format, model: Model, values: Mapping[str, Any], state: State,
              options: Options, e_c: Any, e_mu: Any, exact_arith: Any,
              errors: "Mapping[str, Any] | None" = None
              ) -> tuple[Chain, dict, dict[str, "str | None"]]:
    """The bound chain of a step of a run in arithmetic ``A`` (exact Dyadics for one step, or
    pairs on arrays of steps: ``reference.batch.optim_chain``): the plain step's chain, then
    each parameter's optimiser nodes, their exact values in ``exact_arith``.  Returns the chain,
    the nodes on the way to each node, and per quantity of :data:`RUN_QUANTITIES` the chain's
    name of its node (None for a buffer the options do not keep).  ``errors``: the input errors
    of the other constants an evaluation may round (:func:`hyper_errors`: ``wd``, ``mu``; and
    :func:`lr_error`'s ``lr``)."""
    # (ftz: a subnormal input read as zero is an input error, as in bounds.case_bounds)
    chain = bound_chain(A, fmt, model, values,
                        {k: flush_error(A, fmt, model, values[k]) for k in INPUTS})
    way: dict = dict({k: () for k in INPUTS}, **ANCESTORS)  # the nodes on the way to each
    names: dict[str, "str | None"] = {}
    for theta in PARAMETERS:
        top = _parameter_chain(chain, fmt, model, theta, state, values, options, e_c, e_mu,
                               way, exact_arith, errors)
        names[f"{theta}_new"] = top["theta_new"]
        names[f"buf_{theta}"] = top[options.rules.state] if options.buffered else None
    for q in REQUIRED + ("dL_dy",):
        if q not in UPDATED:
            names[q] = NODE_OF[q]
    return chain, way, {q: names[q] for q in RUN_QUANTITIES}


def _bound(chain: Chain, A, name: str, way: Mapping[str, tuple]) -> Bound:
    flag = chain.flags[name]
    if flag:
        origin = next(n for n in way[name] if chain.flags[n])
        return OutOfDomain(flag, A.finish(chain.errors[name], name), origin)
    return A.finish(chain.errors[name], name)


def _parameter_chain(chain: Chain, fmt: Format, model: Model, theta: str, state: State,
                     values: Mapping[str, Any], options: Options, e_c: Any, e_mu: Any,
                     way: dict, exact_arith: Any = DYADIC,
                     errors: "Mapping[str, Any] | None" = None) -> dict[str, str]:
    """The chain over one parameter's optimiser nodes; returns the chain's name of each node
    (suffixed with the parameter: ``gd_w``, ...).  ``e_c``, ``e_mu``: the largest error of
    ``c = 1 - tau`` and of the momentum ``mu*buf`` uses (in the buffer format); ``errors``:
    those of the other constants (``wd``, ``mu``, ``lr``) and of the buffers (``buf_w``,
    ``buf_b``: flush-to-zero), zero where absent."""
    A = chain.A
    ops = A.ops
    errors = errors or {}
    B = buffer_format(fmt, options)
    rules = options.rules
    exact = parameter_nodes(theta, values, state, values["lr"], options, exact_arith)
    gradient = PARAMETERS[theta]
    names = {"theta": theta, "G": gradient, "lr": "lr"}
    exact = dict(exact, mu_buffer=exact["mu"])
    for operand, error in (("wd", errors.get("wd", A.zero)), ("mu", errors.get("mu", A.zero)),
                           ("mu_buffer", e_mu), ("c", e_c),
                           ("buf", errors.get(f"buf_{theta}", A.zero))) + (
                               (("lr", errors["lr"]),) if "lr" in errors else ()):
        if operand in exact:
            name = names[operand] = f"{operand}_{theta}"
            chain.values[name], chain.errors[name], chain.flags[name] = exact[operand], error, \
                ops.false
            A.begin(name)
            A.end(name, [])
            way[name] = ()
    keep, alias = rules.plan(options, first=state.buffer(theta) is None)
    for node in keep:
        buffered = node.name in rules.buffer_nodes
        name = names[node.name] = f"{node.name}_{theta}"
        # a product in the buffer format uses the momentum as that format's kernel may see it
        args = [names["mu_buffer" if buffered and a == "mu" else resolve_alias(a, alias)]
                for a in node.args]
        chain.values[name] = exact[node.name]
        way[name] = tuple(dict.fromkeys(n for a in args for n in way[a])) + (name,)
        flag = ops.false
        for a in args:
            flag = ops.either(flag, chain.flags[a])
        described = _Described(_KINDS.get(node.op, ""), _text(node, theta))
        # the buffer's nodes round to the buffer format: its terms, its overflow threshold
        chain.fmt = here = B if buffered else fmt
        A.begin(name)
        if node.op == "sign" or (node.op == "copy" and holds(B, fmt)):
            # exact (a negation, a copy into a format holding the operand): its error, its flag
            chain.errors[name], chain.flags[name] = chain.errors[args[0]], flag
        elif node.op == "copy":  # the first-step copy into a narrower buffer: a rounding
            chain.node(name, chain.errors[args[0]], flag, node=_Described("mul", described.text))
        elif node.op == "mul" and "c" in node.args and _is_one(exact["c"]) and _is_zero(e_c) \
                and holds(B, fmt):
            other = args[1 - node.args.index("c")]  # c*x = x: a product by one
            chain.errors[name], chain.flags[name] = chain.errors[other], flag
        elif node.op == "mul":
            _product(chain, name, args, flag, here, model, exact[node.name], described)
        else:  # a sum: the operands' errors add (negation is exact)
            chain.node(name, A.add(chain.errors[args[0]], chain.errors[args[1]]), flag,
                       node=described)
        A.end(name, [a for a in args if a not in INPUTS])  # (as bound_chain: nodes only)
        chain.fmt = fmt
    for name, target in alias.items():
        names.setdefault(name, names[resolve_alias(target, alias)])
    return names


def _is_one(v: Any) -> bool:
    return not hasattr(v, "hi") and v == 1  # (a pair is never taken for 1)


def _is_zero(v: Any) -> bool:
    return getattr(v, "shape", ()) == () and v == 0  # (a constant, not an array of steps)


def _product(chain: Chain, name: str, args: list, flag: Any, here: Format, model: Model,
             value: Any, described: "_Described") -> None:
    """A product node: where both operands are exact, the largest error of the admitted
    roundings of the exact product, exactly (rounding_spread); elsewhere the propagation
    lemma.  On arrays of steps each step takes its own (``bounds._first_product``'s way)."""
    A, ops = chain.A, chain.A.ops
    exact = ops.logical_and(chain.errors[args[0]] == 0, chain.errors[args[1]] == 0)
    general = None
    if not ops.is_true(exact):
        chain.node(name, chain.product_error(*args), flag, node=described)
        general = chain.errors[name], chain.flags[name], chain.parts[name]
        if ops.is_true(ops.logical_not(exact)):  # (no step exact)
            return
    error, overflow = rounding_spread(A, here, model, value)
    reason = ops.flag(overflow, lambda: f"{described.text} overflows {here.name}")
    chain.node(name, A.zero, ops.either(flag, reason), rounding=error, node=described)
    if general is not None:  # some steps exact, others not
        chain.errors[name] = ops.select(exact, chain.errors[name], general[0])
        chain.flags[name] = ops.pick(exact, chain.flags[name], general[1])
        chain.parts[name] = general[2]


def _text(node, theta: str) -> str:
    """How messages name an optimiser node of parameter ``theta``."""
    operands = {"theta": theta, "G": "dL_dw" if theta == "w" else "dL_db", "buf": f"buf_{theta}",
                "c": "(1 - dampening)", "wd": "weight_decay", "mu": "momentum"}
    args = [operands.get(a, f"{a}_{theta}") for a in node.args]
    symbol = {"mul": "*", "add": " + ", "sub": " - "}.get(node.op)
    if symbol is None:
        return f"{node.name}_{theta} = {node.code}"
    return f"{node.name}_{theta} = {symbol.join(args)}"
