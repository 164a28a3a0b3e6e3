"""The option sets of runs of SGD with options (spec/protocol.md R1, R7): the one mapping every
form passes to an implementation, its parsing from ``--options SPEC``, and the option sets a
check draws when none is named.

An option set holds its values as values of the parameter format (``momentum``, ``dampening``,
``weight_decay``); :func:`for_format` rounds a parsed SPEC to each format checked, or to
binary64 under the model option ``hyper-binary64`` (spec/neuron.md 8.1: as a torch user passes
Python floats).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from reference.formats import FLOAT64, Format, get_format, parse_exact
from reference.optim import CONVENTION_NAMES, Options

__all__ = ["OptionSet", "parse_spec", "DEFAULT_SETS", "CONVENTIONS", "OPTION_KEYS",
           "default_sets", "with_convention", "declared_sets", "check_sets", "convention_of"]

#: The conventions of spec/neuron.md 8.6.
CONVENTIONS = CONVENTION_NAMES
#: Every key of the options mapping, in the order of spec/protocol.md R1.
OPTION_KEYS = ("momentum", "dampening", "weight_decay", "nesterov", "maximize", "convention",
               "buffer_format")
_VALUES = ("momentum", "dampening", "weight_decay")
_FLAGS = ("nesterov", "maximize")


@dataclass(frozen=True)
class OptionSet:
    """One option set as given (exact values, before rounding to a format)."""

    momentum: Fraction = Fraction(0)
    dampening: Fraction = Fraction(0)
    weight_decay: Fraction = Fraction(0)
    nesterov: bool = False
    maximize: bool = False
    convention: str = "torch"

    def for_format(self, fmt: "Format | str", buffer_format: "str | None" = None,
                   hyper: bool = False) -> dict[str, Any]:
        """The mapping of R1 for ``fmt``: every key written, the values rounded to nearest to
        the format, or to binary64 where ``hyper`` (the model option hyper-binary64) says so (a
        usage error where one overflows or the set leaves the domain of 8.1)."""
        fmt = get_format(fmt)
        out: dict[str, Any] = {}
        for key in _VALUES:
            value = (FLOAT64 if hyper else fmt).round(getattr(self, key))
            if not math.isfinite(value) or not math.isfinite(fmt.round(value)):
                raise ValueError(f"{key} = {float(getattr(self, key))!r} overflows {fmt.name}")
            out[key] = value
        out.update(nesterov=self.nesterov, maximize=self.maximize, convention=self.convention,
                   buffer_format=buffer_format or fmt.name)
        if out["buffer_format"] != fmt.name and self.convention != "torch":
            raise ValueError(f"a {out['buffer_format']} buffer with {fmt.name} parameters is "
                             f"checked under the torch convention only, not {self.convention}")
        reference_options(out)  # (the domain: the convention's own checks)
        return out

    def spec(self) -> str:
        """The SPEC naming this set (what ``--options`` takes; '' for every option off)."""
        parts = [f"{k}={_text(getattr(self, k))}" for k in _VALUES if getattr(self, k) != 0]
        parts += [k for k in _FLAGS if getattr(self, k)]
        if self.convention != "torch":
            parts.append(f"convention={self.convention}")
        return ",".join(parts)


def _text(value: Fraction) -> str:
    """A value as SPEC text that parses back to it: its shortest float repr where exact, else
    its exact decimal (every parsed value has a terminating one)."""
    f = float(value)
    if Fraction(f) == value:
        return repr(f)
    digits = 0
    while (value * 10 ** digits).denominator != 1:
        digits += 1
    whole = abs(value.numerator * 10 ** digits // value.denominator)
    text = str(whole).rjust(digits + 1, "0")
    sign = "-" if value < 0 else ""
    return f"{sign}{text[:-digits]}.{text[-digits:]}" if digits else f"{sign}{text}"


def reference_options(options: "dict[str, Any]") -> Options:
    """The reference's :class:`reference.optim.Options` of a mapping of R1 (the declared
    convention's domain checks: a ValueError outside it)."""
    return Options(momentum=options["momentum"], dampening=options["dampening"],
                   nesterov=options["nesterov"], weight_decay=options["weight_decay"],
                   maximize=options["maximize"],
                   buffer_format=options.get("buffer_format"),
                   convention=options.get("convention", "torch"))


def parse_spec(spec: str) -> OptionSet:
    """``momentum=0.9,dampening=0.1,weight_decay=1e-4,nesterov,maximize`` (decimal or C99 hex
    values; bare names for the booleans); a ValueError naming the problem and the fix."""
    given: dict[str, Any] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, eq, text = part.partition("=")
        name = name.strip().replace("-", "_")
        if name in _FLAGS and not eq:
            given[name] = True
        elif name in _FLAGS:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError(f"--options: {name}={text} is not a boolean; write {name} or "
                                 f"{name}=false")
            given[name] = lowered in ("true", "1")
        elif name in _VALUES and eq:
            try:
                value = parse_exact(text.strip())
            except (ValueError, ArithmeticError):
                raise ValueError(f"--options: {name}={text} is not a decimal or hex number "
                                 f"(e.g. {name}=0.9 or {name}=0x1.ccccccp-1)") from None
            given[name] = value
        elif name == "convention" and eq:
            if text not in CONVENTIONS:
                raise ValueError(f"--options: unknown convention {text!r}; choose one of "
                                 f"{', '.join(CONVENTIONS)}")
            given[name] = text
        elif name in _VALUES:
            raise ValueError(f"--options: {name} needs a value ({name}=...)")
        else:
            raise ValueError(f"--options: unknown option {name!r}; the options are "
                             f"{', '.join(OPTION_KEYS[:5])} (and convention=...)")
    options = OptionSet(**given)
    try:  # the domain of 8.1, before any rounding (a rounding never leaves it; for_format
        # checks it)
        options.for_format("float64")
    except ValueError as exc:
        raise ValueError(f"--options {spec}: {exc}") from None
    return options


def _set(**given: Any) -> OptionSet:
    return OptionSet(**{k: Fraction(v) if k in _VALUES else v for k, v in given.items()})


#: The option sets a check draws when none is named: every option alone, the combinations
#: where the named bugs of spec/neuron.md 8.7 show, and all of them at once (values exact in
#: every format, so that each format checks the same set).
DEFAULT_SETS: tuple[OptionSet, ...] = (
    _set(),
    _set(momentum=0.875),
    _set(momentum=0.5, dampening=0.25),
    _set(momentum=0.875, nesterov=True),
    _set(weight_decay=0.0625),
    _set(maximize=True),
    _set(momentum=0.75, weight_decay=0.125),
    _set(momentum=0.75, dampening=0.125, weight_decay=0.03125, maximize=True),
    _set(momentum=1.5, nesterov=True, weight_decay=0.25, maximize=True),
)


#: The option sets drawn under keras and optax (spec/neuron.md 8.6: no dampening, no
#: maximize; keras: momentum at most 1): every option alone, momentum with decay, and all at
#: once (momentum 1, keras's edge; 1.5 under optax).
_OTHER_SETS: tuple[OptionSet, ...] = (
    _set(),
    _set(momentum=0.875),
    _set(momentum=0.875, nesterov=True),
    _set(weight_decay=0.0625),
    _set(momentum=0.75, weight_decay=0.125),
)


def with_convention(option_set: OptionSet, convention: str) -> OptionSet:
    """``option_set`` declared under ``convention`` (a ValueError where it leaves the
    convention's domain)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; choose one of "
                         f"{', '.join(CONVENTIONS)}")
    out = dataclasses.replace(option_set, convention=convention)
    try:
        out.for_format("float64")  # (its domain: for_format checks it)
    except ValueError as exc:
        raise ValueError(f"--options {out.spec() or '(none)'}: {exc}") from None
    return out


def default_sets(convention: str = "torch") -> tuple[OptionSet, ...]:
    """The option sets a check draws under ``convention`` when none is named."""
    if convention == "torch":
        return DEFAULT_SETS
    last = _set(momentum=1.0 if convention == "keras" else 1.5, weight_decay=0.25,
                nesterov=True)
    return tuple(with_convention(s, convention) for s in _OTHER_SETS + (last,))


def declared_sets(specs: "list[str]", convention: "str | None" = None) -> list[OptionSet]:
    """The option sets ``--options SPEC ...`` names, under ``--convention`` where given (a SPEC
    naming another convention is a ValueError), or the convention's default sets where none is
    named; a ValueError names the problem."""
    sets = []
    for spec in specs:
        option_set = parse_spec(spec)
        if convention is not None:
            if option_set.convention not in ("torch", convention):
                raise ValueError(f"--options {spec}: names the convention "
                                 f"{option_set.convention}, --convention says {convention}")
            option_set = with_convention(option_set, convention)
        sets.append(option_set)
    return sets or list(default_sets(convention or "torch"))


def check_sets(sets: "list[OptionSet]", formats: "list[str]", model: str,
               buffer_format: "str | None" = None) -> None:
    """Each set in each format under ``model``, as a check, sweep or soundness run takes it: a
    ValueError names the first problem (a value a format overflows, a value outside the
    domain, a model the set's convention is not covered under)."""
    from reference.model import get_model
    from reference.optim_bounds import check_run_model

    hyper = get_model(model).hyper_binary64
    for option_set in sets:
        for fmt in formats:
            options = option_set.for_format(fmt, buffer_format, hyper)
            check_run_model(model, get_format(fmt), reference_options(options))


def convention_of(spec: str) -> str:
    """The convention a SPEC names (``convention=...``; torch where it names none)."""
    for part in spec.split(","):
        name, _, value = part.strip().partition("=")
        if name == "convention":
            return value
    return "torch"
