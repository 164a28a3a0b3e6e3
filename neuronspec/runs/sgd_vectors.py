"""Run vectors (spec/protocol.md R6): runs of SGD with options over many steps and steps from
a given state, language-neutral (Wycheproof-shaped), and the verification of any program's
results against them.

``spec/vectors/sgd/<format>.json`` holds, per option set of :data:`SETS` (the torch sets
``neuronspec.cases.options.DEFAULT_SETS``, then three of each other convention's default sets;
the buffer kept in the parameter format), a group of runs
(``SgdRun``) and, where the set has momentum, a group of steps from given states
(``SgdStepFrom``).  Each step of a run carries its exact state ``exactState`` (the exact
trajectory, spec/neuron.md 8.5) and, where the state before it is **pinned** (every state
quantity of every earlier step has one legal value, its exact value), the state ``from`` and
per quantity the exact value, the correctly rounded one, every legal value and the bound
(``reference.optim``, ``optim_rounded``, ``optim_bounds``).  Runs flagged ``ExactRun`` are
pinned at every step (every node exact in the format), drawn so that each named bug of 8.7
that their option set can show departs from them.  Ids are ``100*(n + 1) + slot``, ``n`` the
option set's index in :data:`SETS`: stable, never reused.

``neuronspec vectors write --sgd`` regenerates the files (deterministic: fixed seeds); a test
fails when they are stale.  The format and the flags with their reasons are defined by
``spec/vectors/sgd/schema.json``; files and schema ship inside the package
(``neuronspec.data``, folder ``vectors/sgd``).

``neuronspec vectors run IMPL --sgd`` runs an implementation's ``step_run`` and ``step_from``
on them (in this process, through ``implementations.load``) and writes a results file
(``spec/schemas/results.schema.json``, ``"vectors": "sgd"``); ``neuronspec vectors verify``
judges it: a step whose reported state before it equals ``from`` bit for bit is judged by the
file's values, any other step by ``reference.optim_judge.judge_run`` from the reported state.
"""

from __future__ import annotations

import functools
import json
import math
import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from reference.bounds import IEEE, OutOfDomain
from reference.formats import (BFLOAT16, FORMATS, Format, as_float, exact_decimal, exact_hex,
                               float_hex, parse_exact, parse_hex, to_fraction)
from reference.dyadic import Dyadic, dyadic, dyadic_nodes
from reference.optim import (BUFFERS, DYADIC, PARAMETERS, STATE_QUANTITIES, Options, State,
                             exact_sgd_step, parameter_nodes)
from reference.step import QUANTITIES
from reference.optim_bounds import RUN_QUANTITIES, sgd_bounds
from reference.optim_judge import BUFFER_MISSING, NO_BUFFER, judge_run
from reference.optim_rounded import sgd_legal

from .. import __version__, data
from ..cases.options import (DEFAULT_SETS, OPTION_KEYS, OptionSet, default_sets,
                             reference_options)
from ..errors import DataError, ImplementationError
from .vectors import (bounded_words, hex_order, observed_value, read_vector_file, stale_files,
                      write_files)

__all__ = ["flags", "generate", "write", "stale", "load", "run_implementation", "verify",
           "results_kind", "default_directory", "GENERATED_BY", "Vector", "name_of"]

#: The command that regenerates the files (written into each file's header).
GENERATED_BY = "neuronspec vectors write --sgd"
RUN_SEED = 20261215
#: Slots of a group (``tcId = 100*(n + 1) + slot``): append only.
EXACT_SLOTS = (1, 2, 3)
LEAK_SLOT = 4
RANDOM_SLOTS = (11, 12)
#: The exact runs' search: attempts (a w0, b0 and a schedule each), and draws per step.
SEARCH = (30, 30)
FROM_SLOTS = {"first": 51, "first-zero": 52, "zero": 53, "subnormal": 54, "random": (55, 56),
              "nonfinite": 57}
#: The order of the quantities of a step in the files (``dL_dy`` after ``y``, as one-step).
EXPECTED = QUANTITIES + BUFFERS
STATE = STATE_QUANTITIES
#: The flags of the named bugs (spec/neuron.md 8.7) and of the conventions' forms (8.6), in
#: the schema's order.
BUG_FLAGS = ("FirstStepDampening", "DampeningComplement", "NesterovNewBuffer",
             "WeightDecayBeforeMomentum", "MaximizeSign", "VelocityForm", "ConventionAgreement",
             "DecoupledWeightDecay", "UndampenedTrace", "DecayAfterTrace", "LrSchedule")
#: The option sets of the files, by index n (append only): torch's default sets, then per other
#: convention (spec/neuron.md 8.6) its sets with momentum, momentum and decay, and all at once.
SETS: tuple[OptionSet, ...] = DEFAULT_SETS + tuple(
    default_sets(c)[i] for c in ("keras", "optax", "optax-decay-after") for i in (1, 4, 5))


def default_directory() -> Any:
    """The folder of the shipped run vectors (``spec/vectors/sgd`` in a checkout)."""
    return data.vectors() / "sgd"


def _schema() -> dict:
    return json.loads((default_directory() / "schema.json").read_text(encoding="utf-8"))


def flags() -> dict[str, str]:
    """Every flag a run vector may carry, with its written reason (from the run vectors'
    schema)."""
    return {f["const"]: f["description"] for f in _schema()["$defs"]["flags"]["items"]["oneOf"]}


def name_of(fmt_name: str, tc: Any, step: "int | None" = None) -> str:
    """How reports name a run vector, or one step of it (R6: ``float32-sgd-12 step 3``)."""
    return f"{fmt_name}-sgd-{tc}" + (f" step {step}" if step else "")


# ---- generation ---------------------------------------------------------------------------------

def _bits(m: int) -> int:
    """The number of significant bits of the integer ``m``."""
    m = abs(m)
    return 0 if m == 0 else m.bit_length() - ((m & -m).bit_length() - 1)


@dataclass(frozen=True)
class _Pool:
    """The small dyadic values exact runs are drawn from (few significant bits, so that every
    node of a few steps is a value of the format)."""

    values: tuple[float, ...]  # w0, b0, t
    xs: tuple[float, ...]
    lrs: tuple[float, ...] = (0.5, 0.25, 0.125, 0.0625)


def _pool(fmt: Format) -> _Pool:
    if fmt.p < 16:  # float16, bfloat16: 2 significant bits, multiples of 1/4 in [-4, 4]
        values = sorted({m / 4 for m in range(-16, 17) if m and _bits(m) <= 2})
        xs = sorted({m / 2 for m in range(-4, 5) if m and _bits(m) <= 2})
    else:  # float32, float64: 3 bits, multiples of 1/8 (buffers a bfloat16 one cannot hold)
        values = sorted({m / 8 for m in range(-32, 33) if m and _bits(m) <= 3})
        xs = sorted({m / 8 for m in range(-16, 17) if m and _bits(m) <= 3})
    return _Pool(tuple(values), tuple(xs))


def _value_json(v: float) -> dict:
    return {"hex": float_hex(v), "decimal": exact_decimal(v, 100000)}


def _options_json(mapping: Mapping[str, Any]) -> dict:
    """The options object of R1/R5: values as {hex, decimal}, every key written."""
    return {k: _value_json(mapping[k]) if k in ("momentum", "dampening", "weight_decay")
            else mapping[k] for k in OPTION_KEYS}


def options_mapping(options: Mapping[str, Any]) -> dict[str, Any]:
    """The R1 mapping (floats, bools, strings) of a group's options object."""
    return {k: float.fromhex(options[k]["hex"]) if isinstance(options[k], Mapping)
            else options[k] for k in OPTION_KEYS}


def _exact_hex(v: "Fraction | None") -> "str | None":
    return None if v is None else exact_hex(v)


def _state_hex(state: State) -> dict:
    """A state of format values as the files write ``from`` (float hex: signed zeros kept)."""
    return {"w": float_hex(float(state.w)), "b": float_hex(float(state.b)),
            "buf_w": None if state.buf_w is None else float_hex(float(state.buf_w)),
            "buf_b": None if state.buf_b is None else float_hex(float(state.buf_b))}


def _inputs_json(x: float, t: float, lr: float) -> dict:
    return {"x": _value_json(x), "t": _value_json(t), "lr": _value_json(lr)}


def _quantity(fmt: Format, exact: Fraction, bound: Any, legal: Iterable[float]) -> dict:
    """A quantity's entry (the one-step vectors' shape)."""
    entry = {"exact": exact_decimal(exact, 100000), "exactHex": exact_hex(exact),
             "rounded": float_hex(fmt.round(exact)),
             "legal": sorted({float_hex(v) for v in legal}, key=hex_order)}
    if isinstance(bound, OutOfDomain):
        entry["outOfDomain"] = bound.reason
        bound = bound.bound  # held by the finite results all the same
    if bound is not None:
        entry["bound"] = exact_hex(Fraction(bound))
        entry["boundUlps"] = round(as_float(Fraction(bound) / fmt.ulp(exact)), 6)
    return entry


@dataclass
class _Step:
    """A step computed from a pinned state: its expected entries, and the state after it
    where that is pinned too."""

    expected: dict
    pinned: "State | None"
    nonfinite: bool  # some state quantity has a non-finite legal value


def _step(fmt: Format, state: State, x: float, t: float, lr: float, options: Options) -> _Step:
    """The expected entries of a step from a pinned state, and the state after it where that
    is pinned too (remembered: the search and the files ask for the same steps)."""
    key = (fmt.name, options, tuple(None if v is None else float_hex(float(v)) for v in
                                    (state.w, state.b, state.buf_w, state.buf_b, x, t, lr)))
    if key not in _STEPS:
        _STEPS[key] = _compute_step(fmt, state, x, t, lr, options)
    return _STEPS[key]


#: (format, options, the state and data in hex: signed zeros apart) -> its _Step
_STEPS: dict = {}


def _compute_step(fmt: Format, state: State, x: float, t: float, lr: float,
                  options: Options) -> _Step:
    exact = dict(exact_sgd_step(state, x, t, lr, options))
    exact["dL_dy"] = exact["dL_db"]
    bounds = sgd_bounds(fmt, state, x, t, lr, options, IEEE)
    legal = sgd_legal(fmt, state, x, t, lr, options, IEEE)
    expected = {q: None if exact[q] is None else _quantity(fmt, exact[q], bounds[q], legal.of(q))
                for q in EXPECTED}
    pinned: dict = {}
    nonfinite = False
    for q in STATE:
        if exact[q] is None:
            pinned[q] = None
            continue
        values = legal.of(q)
        nonfinite |= not all(math.isfinite(v) for v in values)
        if len(values) == 1 and math.isfinite(values[0]) and Fraction(values[0]) == exact[q]:
            pinned[q] = values[0]
    ok = len(pinned) == len(STATE)
    return _Step(expected, State(*(pinned[q] for q in STATE)) if ok else None, nonfinite)


def _run_test(fmt: Format, tc: int, comment: str, flags: list[str], w0: float, b0: float,
              data: list[tuple[float, float, float]], options: Options,
              after: "int | None" = None) -> dict:
    """An SgdRun test: ``expected`` on each step whose state before it is pinned."""
    steps = []
    state: "State | None" = State(w0, b0)
    exact_state = State(Fraction(w0), Fraction(b0))
    for k, (x, t, lr) in enumerate(data, 1):
        step: dict = {"inputs": _inputs_json(x, t, lr)}
        if state is not None:
            computed = _step(fmt, state, x, t, lr, options)
            if k > 1:
                step["from"] = _state_hex(state)
            step["expected"] = computed.expected
            state = computed.pinned
        ex = exact_sgd_step(exact_state, x, t, lr, options)
        exact_state = State(ex["w_new"], ex["b_new"], ex["buf_w"], ex["buf_b"])
        step["exactState"] = {"w": exact_hex(ex["w_new"]), "b": exact_hex(ex["b_new"]),
                              "buf_w": _exact_hex(ex["buf_w"]), "buf_b": _exact_hex(ex["buf_b"])}
        steps.append(step)
    test: dict = {"tcId": tc, "comment": comment, "flags": flags}
    if after is not None:
        test["after"] = after
    test.update(init={"w": _value_json(w0), "b": _value_json(b0)}, steps=steps)
    return test


def _exact_in(fmt: Format, value: Any) -> bool:
    q = to_fraction(value)
    r = fmt.round(q)
    return math.isfinite(r) and Fraction(r) == q


def _fits(fmt: Format, d: Dyadic) -> bool:
    """Whether the exact value ``d`` is a value of ``fmt`` (integer arithmetic: fast)."""
    m, e = abs(d.m), d.e
    if m == 0:
        return True
    low = (m & -m).bit_length() - 1
    m, e = m >> low, e + low
    top = e + m.bit_length() - 1
    return m.bit_length() <= fmt.p and top <= fmt.emax and e >= fmt.emin - fmt.p + 1


def _exact_step_ok(fmt: Format, state: State, x: float, t: float, lr: float,
                   options: Options, k: int) -> "State | None":
    """The state after the exact step from ``state`` where every node of the step is a value
    of ``fmt`` and the gradients after maximize and decay are nonzero (both at step 1, one at
    step 2: so that dampening on the first step, Nesterov, maximize and tau for 1 - tau
    depart); else None.  (In integer Dyadics, as ``optim_bounds`` does: the search calls it
    thousands of times; ``_step`` computes the files' values with ``reference.optim``.)"""
    nodes = dyadic_nodes(state.w, state.b, x, t, lr)
    if not all(_fits(fmt, v) for v in nodes.values()):
        return None
    params = {theta: parameter_nodes(theta, nodes, state, nodes["lr"], options, DYADIC)
              for theta in PARAMETERS}
    # (the gradient the optimiser uses: torch's after maximize and decay, optax's after its
    # decay; keras's G, its decay being on the variable)
    zero = [p.get("gd", p["G"]).m == 0 for p in params.values()]
    if (k == 1 and any(zero)) or (k == 2 and all(zero)):
        return None
    if not all(_fits(fmt, v) for p in params.values() for v in p.values()):
        return None
    w, b = (params[theta]["theta_new"] for theta in PARAMETERS)
    bufs = [params[theta][options.rules.state] for theta in PARAMETERS] if options.buffered \
        else [None, None]
    return State(*(None if v is None else float(v) for v in (w, b, *bufs)))


def _divide(a: Dyadic, r: Dyadic) -> "Dyadic | None":
    """``a / r`` where it is dyadic (the odd part of r divides a), else None."""
    m, e = r.m, r.e
    low = (abs(m) & -abs(m)).bit_length() - 1
    m, e = m >> low, e + low
    if a.m % m:
        return None
    return Dyadic(a.m // m, a.e - e)


def _candidate(fmt: Format, pool: "_Pool", state: State, options: Options,
               rng: random.Random) -> "tuple[float, float] | None":
    """(x, t) for the next step of an exact run, or None.  Drawn from the pool: x and the
    residual r = y - t (t = w*x + b - r, so the gradients r*x and r have few bits); or, under
    weight decay, aimed: each parameter's gradient after maximize and decay chosen from the
    pool and the data solved for it (so the decay adds no bits)."""
    wd = dyadic(options.weight_decay)
    w, b = dyadic(state.w), dyadic(state.b)
    if not wd.m or rng.random() < 0.5:
        x, r = dyadic(rng.choice(pool.xs)), dyadic(rng.choice(pool.values))
    else:  # sigma*G = gd - wd*theta, with G = r for b and r*x for w
        sigma = -1 if options.maximize else 1
        r = (dyadic(rng.choice(pool.values)) - wd * b) * sigma
        if not r.m:
            return None
        x = _divide((dyadic(rng.choice(pool.values)) - wd * w) * sigma, r)
        if x is None or not x.m or not _fits(fmt, x) or not _fits(fmt, r):
            return None
    t = w * x + b - r
    return (float(x), float(t)) if _fits(fmt, t) else None


def _draw_exact_run(fmt: Format, options: Options, rng: random.Random, narrow_buffer: bool
                    ) -> tuple[float, float, list]:
    """A run whose every node is exact and whose every step is pinned, built step by step:
    w0, b0 from the format's pool (nonzero: weight decay departs), then per step lr and
    (x, t) from :func:`_candidate`, drawn again until the step is exact.  Its last buffers are
    nonzero (a run a state leak can follow); with ``narrow_buffer`` some buffer is not a
    bfloat16 value (an undeclared bfloat16 buffer departs).  Four steps where some attempt
    gets there, else the longest found (weight decay in float16 and bfloat16 leaves few long
    exact runs)."""
    pool = _pool(fmt)
    narrow_buffer &= options.buffered
    found = []
    for attempt in range(SEARCH[0]):
        w0, b0 = rng.choice(pool.values), rng.choice(pool.values)
        lrs = pool.lrs if rng.random() < 0.5 else (rng.choice(pool.lrs),)
        state, data, states = State(w0, b0), [], []
        for k in range(1, 5):
            for _ in range(SEARCH[1]):
                lr = rng.choice(lrs)
                xt = _candidate(fmt, pool, state, options, rng)
                nxt = None if xt is None else _exact_step_ok(fmt, state, *xt, lr, options, k)
                if nxt is not None:
                    break
            else:
                break
            data.append((*xt, lr))
            state = nxt
            states.append(state)
        found += [(k, attempt, w0, b0, data[:k], states[:k]) for k in range(1, len(data) + 1)]
        if len(data) == 4 and _acceptable(fmt, options, w0, b0, data, states, narrow_buffer):
            return w0, b0, data
    for _, _, w0, b0, data, states in sorted(found, key=lambda f: (-f[0], f[1])):
        if _acceptable(fmt, options, w0, b0, data, states, narrow_buffer):
            return w0, b0, data
    raise RuntimeError(f"no exact run found for {options} in {fmt.name}: widen the search")


def _acceptable(fmt: Format, options: Options, w0: float, b0: float, data: list,
                states: list, narrow_buffer: bool) -> bool:
    """Whether an exact run ends with nonzero buffers, holds a buffer that is not a bfloat16
    value where ``narrow_buffer`` asks for one, and is pinned at every step."""
    if options.buffered and (states[-1].buf_w == 0 or states[-1].buf_b == 0):
        return False
    if narrow_buffer and all(_exact_in(BFLOAT16, s.buffer(theta)) for s in states
                             for theta in PARAMETERS):
        return False
    state = State(w0, b0)
    for x, t, lr in data:
        state = _step(fmt, state, x, t, lr, options).pinned
        if state is None:
            return False
    return True


def _bug_flags(options: Options, data: list) -> list[str]:
    """The named-bug flags an exact run of ``options`` exposes (:func:`_exact_run_ok` drew it
    so that each one its options allow departs)."""
    mu = options.buffered
    tau = float(options.dampening)
    wd = float(options.weight_decay) != 0
    lrs = {lr for _, _, lr in data}
    c = options.convention
    given = {"FirstStepDampening": mu and tau != 0,
             "DampeningComplement": mu and tau != 0.5 and len(data) >= 2 and c == "torch",
             "NesterovNewBuffer": mu and options.nesterov,
             "WeightDecayBeforeMomentum": mu and wd and c in ("torch", "optax"),
             "MaximizeSign": options.maximize,
             "VelocityForm": mu and c == "keras",
             # K1 (keras: no decay, a constant lr) and O1 (optax: the decay before the trace)
             "ConventionAgreement": mu and ((c == "keras" and not wd and len(lrs) == 1)
                                            or c == "optax"
                                            or (c == "optax-decay-after" and not wd)),
             "DecoupledWeightDecay": wd and c == "keras",
             "UndampenedTrace": mu and c.startswith("optax"),
             "DecayAfterTrace": wd and c == "optax-decay-after",
             "LrSchedule": len(lrs) > 1}
    return [f for f in BUG_FLAGS if given[f]]


def _random_value(fmt: Format, rng: random.Random, lo: int = -4, hi: int = 4) -> float:
    """A value of the format of ordinary size (the regime 'ordinary': magnitudes 2^lo..2^hi,
    either sign, every bit of the significand drawn)."""
    return fmt.round(Fraction(rng.uniform(0.5, 1.0)) * Fraction(2) ** rng.randint(lo, hi)
                     * rng.choice((-1, 1)))


def _random_data(fmt: Format, rng: random.Random, k: int) -> list:
    return [(_random_value(fmt, rng), _random_value(fmt, rng),
             abs(_random_value(fmt, rng, -6, -2))) for _ in range(k)]


def _rng(fmt: Format, n: int, slot: int) -> random.Random:
    """One generator per test: a test's content does not depend on the others."""
    return random.Random(f"{RUN_SEED}-{fmt.name}-{n}-{slot}")


def _run_group(fmt: Format, n: int, opset: OptionSet) -> dict:
    mapping = opset.for_format(fmt)
    options = reference_options(mapping)
    base = 100 * (n + 1)
    tests = []
    for slot in EXACT_SLOTS:
        w0, b0, data = _draw_exact_run(fmt, options, _rng(fmt, n, slot),
                                       narrow_buffer=fmt.p >= 24 and slot == EXACT_SLOTS[0])
        tests.append(_run_test(fmt, base + slot, f"exact run, {len(data)} steps: every node "
                               f"exact in {fmt.name}", ["ExactRun"] + _bug_flags(options, data),
                               w0, b0, data, options))
        if slot == EXACT_SLOTS[0] and options.buffered:  # the state-leak pair: right after it
            w0, b0, data = _draw_exact_run(fmt, options, _rng(fmt, n, LEAK_SLOT), False)
            tests.append(_run_test(
                fmt, base + LEAK_SLOT, f"exact run, {len(data)} steps, right after tcId "
                f"{base + slot} (which ends with nonzero buffers): it starts from no buffer",
                ["StateLeak", "ExactRun"] + _bug_flags(options, data), w0, b0, data, options,
                after=base + slot))
    for slot in RANDOM_SLOTS:
        rng = _rng(fmt, n, slot)
        w0, b0 = _random_value(fmt, rng), _random_value(fmt, rng)
        tests.append(_run_test(fmt, base + slot, "random run, regime 'ordinary', 3 steps: "
                               "expected where the state is pinned", ["Random"], w0, b0,
                               _random_data(fmt, rng, 3), options))
    return {"type": "SgdRun", "format": fmt.name, "options": _options_json(mapping),
            "tests": tests}


def _from_test(fmt: Format, tc: int, comment: str, flags: list[str], state: State, x: float,
               t: float, lr: float, options: Options) -> dict:
    step = _step(fmt, state, x, t, lr, options)
    return {"tcId": tc, "comment": comment, "flags": flags,
            "state": {"w": _value_json(state.w), "b": _value_json(state.b),
                      "buf_w": None if state.buf_w is None else _value_json(state.buf_w),
                      "buf_b": None if state.buf_b is None else _value_json(state.buf_b)},
            "inputs": _inputs_json(x, t, lr), "expected": step.expected}


def _negative_zero_buffer(fmt: Format, options: Options, rng: random.Random,
                          buffers: "tuple[float, float] | None", sign: float = -1.0) -> tuple:
    """A state (with ``buffers``, or none) and data after which some buffer's one legal value
    is -0: the gradient is a zero, its sign carried through maximize, decay and the buffer.
    ``sign`` +1: a buffer whose one legal value is +0 where its gradient is -0 (a state
    starting at +0: optax's G + mu*0, keras's 0*mu - G*lr, spec/protocol.md R2)."""
    pool = _pool(fmt)
    zeros = (0.0, -0.0)
    for _ in range(20000):
        w, x = rng.choice(zeros + pool.values[:4]), rng.choice(pool.xs)
        b = rng.choice(zeros + pool.values)
        y = Fraction(w) * Fraction(x) + Fraction(b)
        if not _exact_in(fmt, y):
            continue
        t = fmt.round(y)  # r = y - t = +0: the gradients are zeros, dL_dw's sign is x's
        lr = rng.choice(pool.lrs)
        state = State(w, b, *(buffers or (None, None)))
        nodes = dyadic_nodes(w, b, x, t, lr)
        if all(parameter_nodes(theta, nodes, state, nodes["lr"], options,
                               DYADIC)[options.rules.state].m for theta in PARAMETERS):
            continue  # a buffer that is not zero
        legal = sgd_legal(fmt, state, x, t, lr, options, IEEE)
        if any(legal.of(q) == [0.0] and math.copysign(1.0, legal.of(q)[0]) == sign
               and (sign < 0 or math.copysign(1.0, legal.of(g)[0]) < 0)
               for q, g in (("buf_w", "dL_dw"), ("buf_b", "dL_db"))):
            return state, x, t, lr
    raise RuntimeError(f"no {'-' if sign < 0 else '+'}0 buffer found for {options} in "
                       f"{fmt.name}")


def _from_group(fmt: Format, n: int, opset: OptionSet) -> dict:
    mapping = opset.for_format(fmt)
    options = reference_options(mapping)
    base = 100 * (n + 1)
    S = FROM_SLOTS
    tests = []
    rng = _rng(fmt, n, S["first"])
    v = lambda *r: _random_value(fmt, rng, *r)  # noqa: E731
    zero_state = options.rules.zero_state  # (keras, optax: no buffer is the state +0)
    tests.append(_from_test(fmt, base + S["first"], "random state with no buffer: the first "
                            + ("step starts from the state +0" if zero_state else
                               "step copies the gradient into the buffer"),
                            ["FirstStepMomentum"], State(v(), v()), v(), v(), abs(v(-6, -2)),
                            options))
    state, x, t, lr = _negative_zero_buffer(fmt, options, _rng(fmt, n, S["first-zero"]), None,
                                            1.0 if zero_state else -1.0)
    tests.append(_from_test(fmt, base + S["first-zero"], "no buffer, a gradient -0: " +
                            ("from the state +0 the new state is +0 (torch's copy is -0)"
                             if zero_state else "the first-step copy is -0"),
                            ["FirstStepMomentum", "SignedZeroBuffer"], state, x, t, lr, options))
    state, x, t, lr = _negative_zero_buffer(fmt, options, _rng(fmt, n, S["zero"]), (-0.0, 0.0))
    tests.append(_from_test(fmt, base + S["zero"], "buffers -0 and +0, a gradient -0: the new "
                            "buffer is -0", ["SignedZeroBuffer"], state, x, t, lr, options))
    rng = _rng(fmt, n, S["subnormal"])
    tiny, small = fmt.smallest_subnormal, fmt.smallest_normal
    tests.append(_from_test(fmt, base + S["subnormal"], "subnormal buffers and a zero gradient: "
                            "mu*buf is the new buffer, and lr = 1 moves w and b by it",
                            ["SubnormalBuffer"], State(0.0, 0.0, 3 * tiny, -small),
                            rng.choice(_pool(fmt).xs), 0.0, 1.0, options))
    for slot in S["random"]:
        rng = _rng(fmt, n, slot)
        v = lambda *r: _random_value(fmt, rng, *r)  # noqa: E731
        tests.append(_from_test(fmt, base + slot, "random state, regime 'ordinary'", ["Random"],
                                State(v(), v(), v(), v()), v(), v(), abs(v(-6, -2)), options))
    if float(options.momentum) > 1:  # mu*buf overflows where buf is near the largest value
        rng = _rng(fmt, n, S["nonfinite"])
        v = lambda *r: _random_value(fmt, rng, *r)  # noqa: E731
        state = State(v(), v(), fmt.round(Fraction(fmt.largest_finite) * 3 / 4), v())
        x, t, lr = v(), v(), abs(v(-6, -2))
        if not _step(fmt, state, x, t, lr, options).nonfinite:
            raise RuntimeError("the NonFiniteState test does not overflow")
        tests.append(_from_test(fmt, base + S["nonfinite"], "buf_w = 3/4 of the largest value "
                                "and momentum > 1: mu*buf_w overflows, the state is not finite",
                                ["NonFiniteState"], state, x, t, lr, options))
    return {"type": "SgdStepFrom", "format": fmt.name, "options": _options_json(mapping),
            "tests": tests}


HEADER = [
    f"Generated by `{GENERATED_BY}` (neuronspec/runs/sgd_vectors.py); do not edit: "
    "`neuronspec vectors check --sgd` and tests/test_sgd_vectors.py fail when the file is "
    "stale.",
    "Option sets: neuronspec.runs.sgd_vectors.SETS: the torch convention's "
    "neuronspec.cases.options.DEFAULT_SETS, then three sets of each of the conventions keras, "
    "optax and optax-decay-after (spec/neuron.md 8.6: their own recurrence and state, keras's "
    "velocity, optax's trace, each starting at +0); the buffer kept in the parameter format. "
    "tcId = 100*(n + 1) + slot, n the option set's index: stable, never reused. Name a step "
    "'<format>-sgd-<tcId> step k'.",
    "An SgdRun runs K steps from 'init' and no buffer. 'expected' of step k is the exact step "
    "(spec/neuron.md 8.2, 8.6) from the state 'from' (step 1: the init), written where that state "
    "is pinned: every state quantity of every earlier step has one legal value, its exact "
    "value. Use it only when the state the implementation reported after step k - 1 equals "
    "'from' bit for bit; judge any other step against the exact step from the reported state "
    "(`neuronspec vectors verify` does), or report it as not judged by the vector, never as "
    "a pass. 'exactState' is the exact trajectory (8.5). ExactRun runs are pinned at every step.",
    "Each quantity's 'exact' value is the exact result (a finite decimal); 'rounded' is it "
    "correctly rounded to the format; 'bound' is an upper bound on |computed - exact| for "
    "every evaluation the ieee model admits (spec/tolerances.md 2.8); 'legal' lists every "
    "value those evaluations give (spec/neuron.md 8.3), bit for bit. buf_w and buf_b are null "
    "where the options keep no buffer (momentum 0), and must be reported as none. An SgdStepFrom "
    "test gives the state; 'after' names the run to run immediately before this one through "
    "the same implementation object or process.",
]


def generate(fmt_name: str) -> dict:
    """The run-vector file of one format (deterministic)."""
    fmt = FORMATS[fmt_name]
    groups = []
    for n, opset in enumerate(SETS):
        groups.append(_run_group(fmt, n, opset))
        if float(opset.momentum) != 0:
            groups.append(_from_group(fmt, n, opset))
    tests = [t for g in groups for t in g["tests"]]
    used = sorted({f for t in tests for f in t["flags"]})
    reasons = flags()
    return {
        "algorithm": "neuronspec: SGD with options over many steps (spec/neuron.md section 8)",
        "generatedBy": GENERATED_BY,
        "generatorVersion": __version__,
        "schema": "schema.json",
        "format": fmt_name,
        "precision": fmt.p, "emin": fmt.emin, "emax": fmt.emax,
        "model": IEEE.name,
        "numberOfTests": len(tests),
        "notes": {f: reasons[f] for f in used},
        "header": HEADER,
        "testGroups": groups,
    }


def write(directory: Any = None, formats: Iterable[str] = FORMATS) -> list[Path]:
    """Write the run-vector files (default: the shipped ones, ``spec/vectors/sgd``)."""
    return write_files(Path(str(directory or default_directory())), formats, generate,
                       "the run vectors")


def stale(directory: Any = None, formats: Iterable[str] = FORMATS) -> list[str]:
    """Files that differ from what ``write`` would produce."""
    return stale_files(directory or default_directory(), formats, generate)


# ---- loading -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Vector:
    """One test of a run-vector file, with what its group fixes."""

    type: str  # SgdRun, SgdStepFrom
    options: dict  # the group's options object
    test: dict

    @property
    def mapping(self) -> dict[str, Any]:
        return options_mapping(self.options)


def load(directory: Any = None) -> dict[str, dict[int, Vector]]:
    """format -> {tcId -> Vector} for every run-vector file in ``directory`` (default: the
    shipped ones), in file order, each checked against the run vectors' schema."""
    directory = directory or default_directory()
    out = {}
    for name in FORMATS:
        path = directory / f"{name}.json"
        if not path.is_file():
            continue
        content = read_vector_file(path, "vectors/sgd/schema.json", "run-vector", GENERATED_BY)
        tests: dict[int, Vector] = {}
        for group in content["testGroups"]:
            for t in group["tests"]:
                if t["tcId"] in tests:
                    raise DataError(f"{path}: tcId {t['tcId']} is used twice")
                _check_test(FORMATS[name], group, t, tests, path)
                tests[t["tcId"]] = Vector(group["type"], group["options"], t)
        out[name] = tests
    if not out:
        raise DataError(f"no run-vector files in {directory}; run `{GENERATED_BY}` or pass "
                        "--dir with a folder that holds them")
    return out


def _read_value(fmt: Format, entry: Mapping, what: str) -> float:
    """A {hex, decimal} value of the format (both spellings alike)."""
    q = parse_hex(entry["hex"])
    if parse_exact(entry["decimal"]) != q:
        raise ValueError(f"{what}: hex and decimal differ")
    v = float.fromhex(entry["hex"])
    if Fraction(v) != q or not fmt.contains(v):
        raise ValueError(f"{what} = {entry['hex']} is not a {fmt.name} value")
    return v


def _check_test(fmt: Format, group: Mapping, test: Mapping, earlier: Mapping, path: Path
                ) -> None:
    """What the schema cannot say: values of the format written twice alike, option sets in
    the domain, sane numbers, and 'after' naming an earlier SgdRun."""
    where = f"{path}: tcId {test['tcId']}"
    try:
        if group["format"] != fmt.name:
            raise ValueError(f"a group of format {group['format']} in the {fmt.name} file")
        for k in ("momentum", "dampening", "weight_decay"):
            _read_value(fmt, group["options"][k], k)
        reference_options(options_mapping(group["options"]))
        values = []
        if group["type"] == "SgdRun":
            values += [(test["init"][k], f"init {k}") for k in ("w", "b")]
            values += [(s["inputs"][k], f"step {i} {k}") for i, s in enumerate(test["steps"], 1)
                       for k in ("x", "t", "lr")]
            for i, s in enumerate(test["steps"], 1):
                if "expected" in s and i > 1 and "from" not in s:
                    raise ValueError(f"step {i} has 'expected' without 'from'")
                if "from" in s and "expected" not in s:
                    raise ValueError(f"step {i} has 'from' without 'expected'")
            after = test.get("after")
            if after is not None and (after not in earlier or earlier[after].type != "SgdRun"):
                raise ValueError(f"'after' names {after}, not an SgdRun earlier in the file")
        else:
            values += [(test["state"][k], f"state {k}") for k in ("w", "b", "buf_w", "buf_b")
                       if test["state"][k] is not None]
            values += [(test["inputs"][k], k) for k in ("x", "t", "lr")]
        for entry, what in values:
            _read_value(fmt, entry, what)
        expected = [s["expected"] for s in test.get("steps", ()) if "expected" in s] \
            + ([test["expected"]] if "expected" in test else [])
        for e in expected:
            for q, entry in e.items():
                if entry is not None:
                    parse_hex(entry["exactHex"])
                    if "bound" in entry:
                        parse_hex(entry["bound"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{where}: {exc}; regenerate the run vectors with `{GENERATED_BY}`"
                        ) from None


def _inputs(entry: Mapping) -> tuple[float, float, float]:
    return tuple(float.fromhex(entry[k]["hex"]) for k in ("x", "t", "lr"))  # type: ignore


def _state(entry: Mapping) -> dict[str, "float | None"]:
    return {k: None if entry[k] is None else float.fromhex(entry[k]["hex"])
            for k in ("w", "b", "buf_w", "buf_b")}


# ---- running an implementation ---------------------------------------------------------------

def _outputs(values: Mapping[str, "float | None"]) -> dict:
    return {q: None if v is None else float_hex(v) for q, v in values.items()}


def run_implementation(impl, vectors: Mapping[str, Mapping[int, Vector]],
                       formats: Iterable[str]) -> list[dict]:
    """An implementation's results on the run vectors (``run`` and ``step_from_state`` of an
    Implementation, or of a supervised process over protocol version 2), in the verify
    format.  Tests run in file order; a
    test with 'after' runs right after its run (run again first where another came between).
    The first NotImplementedError of an option set marks it unsupported (nothing more of it is
    run); one after the set was accepted is a failure of that test."""
    out: list[dict] = []
    for fmt_name in formats:
        tests = vectors.get(fmt_name, {})
        accepted: set = set()
        unsupported: set = set()
        last_run = None
        # (a supervised process says so per request instead: "offers no step_run")
        missing_form = {"SgdRun": getattr(impl, "runner", True) is None,
                        "SgdStepFrom": getattr(impl, "from_state", True) is None}
        for kind, missing in missing_form.items():
            if missing and any(v.type == kind for v in tests.values()):
                out.append({"format": fmt_name, "type": kind, "unsupported":
                            f"offers no {'step_run' if kind == 'SgdRun' else 'step_from'}"})
        for tc, vector in tests.items():
            key = json.dumps(vector.options, sort_keys=True)
            if key in unsupported or missing_form[vector.type]:
                continue
            after = vector.test.get("after")
            if after is not None and last_run != after and after in tests:
                _run_one(impl, fmt_name, tests[after])  # (its results were recorded already)
            try:
                if vector.type == "SgdRun":
                    result = {"format": fmt_name, "tcId": tc,
                              "steps": _run_one(impl, fmt_name, vector)}
                    last_run = tc
                else:
                    result = {"format": fmt_name, "tcId": tc, **_from_one(impl, fmt_name, vector)}
                    last_run = None
            except NotImplementedError as exc:
                reason = str(exc)[:200] or "NotImplementedError"
                if key not in accepted:
                    unsupported.add(key)
                    out.append({"format": fmt_name, "options": vector.options,
                                "unsupported": reason})
                    continue
                failure = (f"declined an option set it accepted before "
                           f"(NotImplementedError: {reason})")
                result = {"format": fmt_name, "tcId": tc, **(
                    {"steps": [{"failure": failure}]} if vector.type == "SgdRun"
                    else {"failure": failure})}
            accepted.add(key)
            out.append(result)
    return out


def _run_one(impl, fmt_name: str, vector: Vector) -> list[dict]:
    test = vector.test
    w0, b0 = (float.fromhex(test["init"][k]["hex"]) for k in ("w", "b"))
    data = [_inputs(s["inputs"]) for s in test["steps"]]
    steps: list[dict] = []
    try:
        for values in impl.run(fmt_name, w0, b0, data, vector.mapping):
            steps.append({"outputs": _outputs(values)})
    except ImplementationError as exc:
        steps.append({"error" if exc.overflow else "failure": str(exc)})
    return steps


def _from_one(impl, fmt_name: str, vector: Vector) -> dict:
    test = vector.test
    try:
        values = impl.step_from_state(fmt_name, _state(test["state"]), *_inputs(test["inputs"]),
                                      vector.mapping)
    except ImplementationError as exc:
        return {"error" if exc.overflow else "failure": str(exc)}
    return {"outputs": _outputs(values)}


# ---- verification -----------------------------------------------------------------------------

def results_kind(path: Path) -> str:
    """'sgd' where a results file says it answers the run vectors, else 'step' (a file that
    cannot be read is left to the loader's error)."""
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "step"
    return "sgd" if isinstance(content, dict) and content.get("vectors") == "sgd" else "step"


def _malformed(entry: object) -> str:
    import jsonschema

    try:
        data.validate(entry, "results.schema.json", "sgdResult")
    except jsonschema.ValidationError as exc:
        at = "/".join(map(str, exc.absolute_path))
        return f"{exc.message}{' at ' + at if at else ''}"
    return ""


#: The quantities a step is judged on, in the order failures are looked for.
_JUDGED = RUN_QUANTITIES


def _parse(fmt: Format, outputs: Mapping) -> "tuple[dict, tuple[str, str] | None]":
    """(quantity -> float or None, None) of a step's outputs, or ({}, (quantity, why)) where
    one is not a value of the format."""
    values: dict[str, Optional[float]] = {}
    for q in _JUDGED:
        if q not in outputs:
            continue  # (dL_dy: optional; the others the schema requires)
        if outputs[q] is None:
            if not q.startswith("buf_"):
                return {}, (q, f"{q} is null")
            values[q] = None
            continue
        v = observed_value(outputs[q], fmt)
        if isinstance(v, str):
            return {}, (q, f"{q}: {v}")
        values[q] = v
    return values, None


def _by_vector(fmt: Format, expected: Mapping, values: Mapping, texts: Mapping
               ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(failures, unexplained), each (quantity, why), of a step judged by the file's values."""
    failures, unexplained = [], []
    for q in _JUDGED:
        if q not in values:
            continue
        exp, v = expected[q], values[q]
        if q.startswith("buf_") and (exp is None) != (v is None):
            failures.append((q, f"{q} = {texts[q]}: {BUFFER_MISSING if v is None else NO_BUFFER}"))
            continue
        if exp is None:
            continue
        legal = exp["legal"]
        if float_hex(v) not in legal:
            unexplained.append((q, f"{q} = {texts[q]} is not what an admitted evaluation gives "
                                   f"({', '.join(legal[:3])}{', ...' if len(legal) > 3 else ''})"))
        why = bounded_words(fmt, q, v, exp)
        if why:
            failures.append((q, f"{q} = {texts[q]} {why}"))
    return failures, unexplained


def _by_reference(judgements: Mapping, explained: Mapping, texts: Mapping
                  ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(failures, unexplained) of a step judged by ``judge_run`` from the reported state."""
    failures, unexplained = [], []
    for q in _JUDGED:
        j = judgements.get(q)
        if j is None:
            continue
        if j.violation and j.why in (NO_BUFFER, BUFFER_MISSING):
            failures.append((q, f"{q} = {texts.get(q)}: {j.why}"))
        elif j.violation:
            why = j.why
            if math.isfinite(j.ratio) and j.ratio > 1:
                why += f" (off by {j.ratio:.3g} times its bound)"
            failures.append((q, f"{q} = {texts.get(q)} is {why} (exact "
                                f"{exact_decimal(j.exact, 25)}, from the reported state)"))
        elif q in explained and not explained[q]:
            unexplained.append((q, f"{q} = {texts.get(q)} is not what an admitted evaluation "
                                   f"gives from the reported state"))
    return failures, unexplained


def _usable(values: Mapping, options: Options) -> str:
    """Why a reported state cannot start the next step ('' if it can: its values are values
    of the format, :func:`_parse` made sure)."""
    state = [values[q] for q in STATE if values.get(q) is not None]
    if not all(math.isfinite(v) for v in state):
        return "the reported state is not finite"
    if (values.get("buf_w") is None) != (not options.buffered) or \
            (values.get("buf_b") is None) != (not options.buffered):
        return "the reported buffers do not match the options"
    return ""


def _out_of_domain(fmt: Format, expected: "Mapping | None", state: State, x: float, t: float,
                   lr: float, options: Options) -> bool:
    """Whether some quantity of the step may overflow in an admitted evaluation."""
    if expected is not None:
        return any(e is not None and "outOfDomain" in e for e in expected.values())
    bounds = sgd_bounds(fmt, state, x, t, lr, options, IEEE)
    return any(isinstance(b, OutOfDomain) for b in bounds.values())


@dataclass
class _Verdict:
    failure: "tuple[int, str, str] | None" = None  # (step, quantity, why)
    unexplained: "tuple[int, str, str] | None" = None
    by_vector: int = 0
    by_reference: int = 0
    stopped: str = ""


def _verify_run(fmt: Format, vector: Vector, steps: list) -> _Verdict:
    test = vector.test
    options = reference_options(vector.mapping)
    w0, b0 = (float.fromhex(test["init"][k]["hex"]) for k in ("w", "b"))
    data = [_inputs(s["inputs"]) for s in test["steps"]]
    verdict = _Verdict()
    state = State(w0, b0)
    reference = None  # judge_run's verdict, made where a step is not the vector's
    for k, entry in enumerate(steps, 1):
        if k > len(data):
            verdict.failure = (k, "", f"more steps than data ({len(data)})")
            return verdict
        vstep = test["steps"][k - 1]
        x, t, lr = data[k - 1]
        covered = "expected" in vstep and (k == 1 or _state_hex(state) == vstep["from"])
        if "outputs" not in entry:
            if "error" in entry and _out_of_domain(fmt, vstep["expected"] if covered else None,
                                                   state, x, t, lr, options):
                verdict.stopped = f"step {k}: an error where a quantity may overflow"
                return verdict  # allowed: judging stops
            verdict.failure = (k, "", _reported_instead(entry))
            return verdict
        values, bad = _parse(fmt, entry["outputs"])
        if bad:
            verdict.failure = (k, *bad)
            return verdict
        texts = entry["outputs"]
        if covered:
            failures, unexplained = _by_vector(fmt, vstep["expected"], values, texts)
            verdict.by_vector += 1
        else:
            if reference is None:
                reference = _judge_run(fmt.name, json.dumps(vector.options, sort_keys=True),
                                       w0, b0, tuple(data), _reported(steps, fmt))
            failures, unexplained = _by_reference(
                reference.steps[k - 1], reference.explained[k - 1], texts)
            verdict.by_reference += 1
        if failures:
            verdict.failure = (k, *failures[0])
            return verdict
        if unexplained and verdict.unexplained is None:
            verdict.unexplained = (k, *unexplained[0])
        why = _usable(values, options)
        if why:
            if k < len(data):
                verdict.stopped = f"after step {k}: {why}"
            return verdict
        state = State(*(values[q] for q in STATE))
    if len(steps) < len(data):
        verdict.failure = (len(steps) + 1, "", f"step {len(steps) + 1} is missing ({len(steps)} "
                                               f"steps for {len(data)})")
    return verdict


def _reported_instead(entry: Mapping) -> str:
    if "error" in entry:
        return f"the program reported an error: {entry['error'][:200]}"
    return f"the program failed: {entry['failure'][:200]}"


def _reported(steps: list, fmt: Format) -> tuple:
    """The reported steps as judge_run reads them (up to the first that is not outputs), as
    hashable (quantity, hex) pairs."""
    out = []
    for entry in steps:
        if "outputs" not in entry:
            break
        values, bad = _parse(fmt, entry["outputs"])
        if bad:
            break
        out.append(tuple((q, None if v is None else float_hex(v)) for q, v in values.items()))
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _judge_run(fmt_name: str, options: str, w0: float, b0: float, data: tuple,
               reported: tuple):
    """``judge_run`` at the exact level (which gives the bounded level too) on a reported run;
    remembered, since implementations that agree bit for bit report the same run."""
    steps = [{q: None if v is None else float.fromhex(v) for q, v in step} for step in reported]
    mapping = options_mapping(json.loads(options))
    return judge_run(FORMATS[fmt_name], w0, b0, list(data)[:len(steps)],
                     reference_options(mapping), steps, IEEE, exact_level=True)


def _verify_from(fmt: Format, vector: Vector, entry: Mapping) -> _Verdict:
    test = vector.test
    verdict = _Verdict(by_vector=1)
    expected = test["expected"]
    if "outputs" not in entry:
        if "error" in entry and any(e is not None and "outOfDomain" in e
                                    for e in expected.values()):
            return verdict
        verdict.failure = (1, "", _reported_instead(entry))
        return verdict
    values, bad = _parse(fmt, entry["outputs"])
    if bad:
        verdict.failure = (1, *bad)
        return verdict
    failures, unexplained = _by_vector(fmt, expected, values, entry["outputs"])
    if failures:
        verdict.failure = (1, *failures[0])
    if unexplained:
        verdict.unexplained = (1, *unexplained[0])
    return verdict


def _covers(entry: Mapping, fmt_name: str, vector: Vector) -> bool:
    """Whether an 'unsupported' entry covers a test."""
    if entry["format"] != fmt_name:
        return False
    if "type" in entry and entry["type"] != vector.type:
        return False
    return "options" not in entry or entry["options"] == vector.options


def verify(results: list, vectors: Mapping[str, Mapping[int, Vector]],
           level: str = "exact") -> dict:
    """Check results on the run vectors (see the results schema's ``sgdResult``), at both
    levels (``level`` decides which failures the summary lists).  Every test of a format that
    has results needs exactly one, except those an 'unsupported' entry covers.  A summary as
    ``vectors.verify`` gives, with the steps judged by the file and from the reported state,
    and what was not checked (``unsupported``: per format, reason -> number of tests)."""
    summary = {"checked": 0, "passed": 0, "failed": 0, "unexplained": 0, "unknown": 0,
               "duplicates": 0, "missing": 0, "malformed": 0, "failures": [],
               "unsupported": {}, "level": level, "stepsByVector": 0, "stepsByReference": 0,
               "stopped": 0, "vectors": "sgd"}
    seen: set = set()
    formats_run: set = set()
    declined: list = []

    def fail(kind: str, fmt_name, tc, reason: str, step: int = 0, quantity: str = "",
             comment: str = "") -> None:
        summary[kind] += 1
        entry = {"format": fmt_name, "tcId": tc, "name": name_of(fmt_name, tc, step),
                 "reason": reason}
        if step:
            entry["step"] = step
        if quantity:
            entry["quantity"] = quantity
        if comment:
            entry["comment"] = comment
        summary["failures"].append(entry)

    for r in results:
        why = _malformed(r)
        if why:
            fail("malformed", r.get("format") if isinstance(r, dict) else None,
                 r.get("tcId") if isinstance(r, dict) else None, f"malformed entry: {why}")
            continue
        fmt_name = r["format"]
        if "unsupported" in r:
            if fmt_name not in vectors:
                fail("unknown", fmt_name, None, "no run vectors of this format")
                continue
            declined.append(r)
            formats_run.add(fmt_name)
            continue
        tc = r["tcId"]
        vector = vectors.get(fmt_name, {}).get(tc)
        if vector is None:
            fail("unknown", fmt_name, tc, "no such test (check format and tcId)")
            continue
        formats_run.add(fmt_name)
        if (fmt_name, tc) in seen:
            fail("duplicates", fmt_name, tc, "a second result for this test")
            continue
        seen.add((fmt_name, tc))
        if ("steps" in r) != (vector.type == "SgdRun"):
            answer = "outputs" if vector.type == "SgdRun" else "steps"
            fail("malformed", fmt_name, tc, f"a result of the wrong form: tcId {tc} is an "
                 f"{vector.type} test, answered by {answer}")
            continue
        fmt = FORMATS[fmt_name]
        verdict = _verify_run(fmt, vector, r["steps"]) if vector.type == "SgdRun" \
            else _verify_from(fmt, vector, r)
        summary["checked"] += 1
        summary["stepsByVector"] += verdict.by_vector
        summary["stepsByReference"] += verdict.by_reference
        summary["stopped"] += bool(verdict.stopped)
        comment = vector.test["comment"]
        if verdict.failure:
            step, q, why = verdict.failure
            fail("failed", fmt_name, tc, why, step, q, comment)
        else:
            summary["passed"] += 1
        if verdict.unexplained and level == "exact" and not verdict.failure:
            step, q, why = verdict.unexplained
            fail("unexplained", fmt_name, tc, why, step, q, comment)
        elif verdict.unexplained:
            summary["unexplained"] += 1
    for fmt_name in sorted(formats_run):
        for tc, vector in vectors[fmt_name].items():
            covering = [d for d in declined if _covers(d, fmt_name, vector)]
            if covering:
                reasons = summary["unsupported"].setdefault(fmt_name, {})
                reason = covering[0]["unsupported"]
                reasons[reason] = reasons.get(reason, 0) + 1
                continue
            if (fmt_name, tc) not in seen:
                fail("missing", fmt_name, tc, "no result for this test")
    summary["notRun"] = sorted(set(vectors) - formats_run)
    return summary
