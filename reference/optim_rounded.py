"""The legal evaluations of one step of a run (spec/neuron.md 8.3).

An evaluation of a step with options is a plain-step evaluation (``rounded.admitted``: its
forward, square, gradient and work) that gives the gradients, followed by the optimiser's nodes
(``optim.NODES``, as ``optim.plan`` keeps them) with a choice of:

- per fusion group (``decay``, ``momentum``, ``nesterov``, ``update``): two roundings or one;
  for ``momentum`` either product may be the fused one;
- the value of ``c = 1 - tau``: one of ``optim_bounds.rounded_constants`` (torch's is the
  last: through binary64, float32 and the format);
- the momentum of ``mu*buf`` in a buffer format that does not hold it: as given, or rounded
  to the buffer format (``optim_bounds.buffer_momenta``);
- the work of the plain evaluation: the format, each operation through the wider format, or
  kept in the wider format and rounded when stored (the buffer is stored; the direction may use
  the unrounded one, as torch's fused CPU kernel does).

Each is computed exactly and rounded as IEEE 754 says (``rounded.fl_*``).  Their results are
the step's legal values: the exact level of a run's verdict, and what the bounded level needs
where IEEE 754 fixes more than a magnitude (an overflow's result, the sign of a zero).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Optional

from .formats import Format, get_format, to_fraction
from .legal import Legal, from_results
from .model import Model
from .optim import Options, State, resolve_alias, plan
from .optim_bounds import (BUFFER_NODES, RUN_QUANTITIES, buffer_format, buffer_momenta,
                           check_run_model, holds, rounded_constants)
from .rounded import work_arithmetic, admitted, evaluate_variants, fl_add, fl_fma, fl_mul

__all__ = ["sgd_evaluations", "sgd_legal"]

#: The fusion choices of each group: False (two roundings) or what is fused.
_CHOICES = {"decay": (False, True), "momentum": (False, "c", "mu"), "nesterov": (False, True),
            "update": (False, True)}


def _groups(options: Options, first: bool) -> list[str]:
    """The fusion groups a step evaluates (a group whose sum is not in the plan has none)."""
    keep, _ = plan(options, first)
    return [g for g in _CHOICES if any(n.fusion == g and n.op in ("add", "sub") for n in keep)]


def sgd_evaluations(fmt: "Format | str", state: State, x: float, t: float, lr: float,
                    options: Options, model: "Model | str" = "ieee"
                    ) -> dict[str, dict[str, Optional[float]]]:
    """Every legal evaluation of one step of a run from ``state``, by name: its values of
    :data:`optim_bounds.RUN_QUANTITIES` (a buffer None where the options keep none)."""
    fmt = get_format(fmt)
    model = check_run_model(model, fmt)
    w, b = float(state.w), float(state.b)
    variants = [v for v in admitted(fmt, model) if not v.update_fused]  # (the update: below)
    plain = evaluate_variants(fmt, w, b, float(x), float(t), float(lr), variants)
    first = state.buf_w is None
    # every step's evaluations are named with the groups of every step of the run (a first step
    # has no momentum sum), so that one evaluation can be followed over a run
    groups, used = _groups(options, False), set(_groups(options, first))
    c_exact = 1 - to_fraction(float(options.dampening))
    # (and with their c, which a first step does not use either)
    named_c = options.buffered and c_exact != 1
    uses_c = named_c and not first
    B = buffer_format(fmt, options)
    constants = [float(c) for c in rounded_constants(fmt, c_exact, B if B != fmt else None)] \
        if named_c else [1.0]
    # the momentum of mu*buf in the buffer format: as given, or rounded there (named where
    # the two differ; a first step has no such product)
    momenta = [float(m) for m in buffer_momenta(fmt, options)] or [0.0]
    named_mu = len(momenta) > 1
    out: dict[str, dict[str, Optional[float]]] = {}
    seen: dict[tuple, str] = {}
    B = buffer_format(fmt, options)
    for v in variants:
        base = plain[v.name]
        ops, _, store = work_arithmetic(fmt, v.work, False)
        # the buffer's nodes in the buffer format, in the same kind of work where the model
        # admits it there
        ops_b, _, store_b = work_arithmetic(B, v.work if model.wide(B) else "format", False)
        buffer = (ops_b, store_b, holds(B, fmt))
        key = (v.work,) + tuple(_bits(base[q]) for q in ("y", "loss", "dL_dw", "dL_db"))
        for choice in itertools.product(*(_CHOICES[g] for g in groups), constants, momenta):
            fused = dict(zip(groups, choice[:-2]))
            c, mu_buffer = choice[-2:]
            name = "+".join([v.name] + [f"{g}-fused" + (f"-{f}" if isinstance(f, str) else "")
                                       for g, f in fused.items() if f]
                            + ([f"c={c.hex()}"] if named_c else [])
                            + ([f"mu_buffer={mu_buffer.hex()}"] if named_mu else []))
            dup = key + tuple(sorted(((g, f) for g, f in fused.items() if g in used), key=str)) \
                + ((c,) if uses_c else ()) + ((mu_buffer,) if named_mu and not first else ())
            if dup in seen:  # the same gradients and choices as an earlier evaluation
                out[name] = out[seen[dup]]
                continue
            seen[dup] = name
            values: dict[str, Optional[float]] = {q: base[q] for q in ("y", "loss", "dL_dw",
                                                                        "dL_db", "dL_dy")}
            for theta, grad in (("w", "dL_dw"), ("b", "dL_db")):
                new, buf = _parameter(ops, store, theta, base[grad], state, float(lr), options,
                                      fused, c, mu_buffer, first, buffer)
                values[f"{theta}_new"], values[f"buf_{theta}"] = new, buf
            out[name] = values
    return out


def _bits(v: float) -> tuple:
    return (v, math.copysign(1.0, v)) if v == v else ("nan",)


def _parameter(ops, store, theta: str, G: float, state: State, lr: float, options: Options,
               fused: Mapping[str, Any], c: float, mu_buffer: float, first: bool,
               buffer: tuple) -> tuple[float, Optional[float]]:
    """(theta_new, the stored buffer) of one parameter in one evaluation; ``mu_buffer``: the
    momentum of ``mu*buf``; ``buffer``: (what rounds the buffer's nodes, what stores the
    buffer, whether a copy into it is exact)."""
    ops_b, store_b, copies = buffer
    keep, alias = plan(options, first)
    wd, mu = float(options.weight_decay), float(options.momentum)
    values: dict[str, Any] = {"theta": float(getattr(state, theta)), "G": G, "lr": lr,
                              "wd": wd, "mu": mu, "c": c, "buf": state.buffer(theta)}
    for node in keep:
        a = [values.get(resolve_alias(x, alias)) for x in node.args]  # (None: fused away)
        name = node.name
        if name == "gs":
            values[name] = -a[0] if options.maximize else a[0]
        elif name == "nb" and node.op == "copy":  # into the buffer: rounded if narrower
            values[name] = a[0] if copies else fl_mul(ops_b, a[0], 1.0)
        elif name == "gd":
            values[name] = fl_fma(ops, wd, values["theta"], a[0]) if fused.get("decay") \
                else fl_add(ops, a[0], a[1])
        elif name == "nb":  # mb + cg, either product fused
            how = fused.get("momentum")
            gd = values[resolve_alias("gd", alias)]
            if how == "c":
                values[name] = fl_fma(ops_b, c, gd, values["mb"])
            elif how == "mu":
                values[name] = fl_fma(ops_b, mu_buffer, values["buf"], values["cg"])
            else:
                values[name] = fl_add(ops_b, a[0], a[1])
        elif name == "dn":
            gd = values[resolve_alias("gd", alias)]
            values[name] = fl_fma(ops, mu, values["nb"], gd) if fused.get("nesterov") \
                else fl_add(ops, a[0], a[1])
        elif name == "theta_new":
            dn = values[resolve_alias("dn", alias)]
            values[name] = fl_fma(ops, -lr, dn, a[0]) if fused.get("update") \
                else fl_add(ops, a[0], -a[1])
        elif node.op == "mul":
            if _fused_away(name, fused):
                continue  # its sum is fused with it: never rounded alone
            if name == "mb":
                a[0] = mu_buffer
            values[name] = fl_mul(ops_b if name in BUFFER_NODES else ops, a[0], a[1])
        else:
            raise AssertionError(f"no evaluation for {node}")
    buf = store_b(values["nb"]) if options.buffered else None
    return store(values["theta_new"]), buf


def _fused_away(name: str, fused: Mapping[str, Any]) -> bool:
    """Whether product ``name`` is computed only inside a fused sum."""
    return {"dq": fused.get("decay") is True, "nm": fused.get("nesterov") is True,
            "lq": fused.get("update") is True, "cg": fused.get("momentum") == "c",
            "mb": fused.get("momentum") == "mu"}.get(name, False)


def sgd_legal(fmt: "Format | str", state: State, x: float, t: float, lr: float,
              options: Options, model: "Model | str" = "ieee") -> Legal:
    """The legal values of one step of a run (``reference.legal.Legal``)."""
    fmt = get_format(fmt)
    model = check_run_model(model, fmt)
    results = sgd_evaluations(fmt, state, x, t, lr, options, model)
    quantities = [q for q in RUN_QUANTITIES if options.buffered or not q.startswith("buf_")]
    return from_results(fmt, model, (state, x, t, lr, options), results, quantities)
