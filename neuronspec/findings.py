"""A finding: one property failure on one case, and how it reads.

Every failure reproduces alone: the message names the format, the inputs in hex and decimal, the
exact and observed values, the error in ulps and as a fraction of the bound, the evaluation
variants that would give the observed value, and the one command that replays the case."""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Optional

from reference.bounds import IEEE, Model
from reference.formats import Format, as_float, exact_decimal, float_hex
from reference.exact import exact_scales, scale_ulp
from reference.step import INPUTS, NODE_OF

__all__ = ["Finding", "PropertyViolation", "replay_command", "replay_words"]


def replay_command(impl: Any, fmt: Format, case: tuple, model: Model = IEEE) -> str:
    """The command that replays ``case`` on ``impl`` alone (``impl.spec``: how it was named;
    or that name itself), quoted for a POSIX shell; ``--case=`` so that a negative first
    input is not an option."""
    return replay_words(impl, fmt, "--case=" + ",".join(float_hex(v) for v in case), model)


def replay_words(impl: Any, fmt: Format, what: str, model: Model = IEEE) -> str:
    """``neuronspec replay IMPL --dtype F WHAT`` for ``impl`` alone (quoted for a POSIX shell;
    ``--model`` where the model is not ieee): every replay command is written here."""
    spec = impl if isinstance(impl, str) else impl.spec or impl.name
    target = spec if spec.startswith("--cmd ") else shlex.quote(spec)
    cmd = f"neuronspec replay {target} --dtype {fmt.name} {what}"
    if model != IEEE:
        cmd += f" --model {shlex.quote(model.name)}"
    return cmd


@dataclass
class Finding:
    """One property failure on one case, with everything needed to understand and replay it."""

    prop: str
    impl: Any  # an Implementation or a ProcessImplementation
    fmt: Format
    regime: str
    case: tuple
    detail: str
    quantity: Optional[str] = None
    exact: Optional[Fraction] = None
    observed: Optional[float] = None
    bound: "Fraction | float | None" = None
    model: Model = IEEE
    #: the variants giving the value and how many of them the model admits; ``variants`` and
    #: ``nearest`` may also be given as functions of no argument, called when first read (see
    #: ``_lazy`` below): a run of a wrong implementation fails on many cases and reports a few
    variants: "tuple[list, int]" = ([], 0)
    outputs: Optional[dict] = None  # the implementation's results on the case, when it gave any
    nearest: Any = None  # reference.legal.Explanation: the nearest legal value, if any

    def _variant_lines(self) -> list[str]:
        names, admitted = self.variants
        ours, others = names[:admitted], names[admitted:]
        lines = []
        if ours:
            lines.append(f"  evaluations the model ({self.model.name}) admits that give this "
                         f"value: {_some(ours)}")
        else:
            lines.append(f"  no evaluation the model ({self.model.name}) admits gives this value")
            e = self.nearest
            if e is not None and e.nearest is not None:
                lines.append(f"  nearest legal value: {float_hex(e.nearest)} "
                             f"({_some(list(e.nearest_variants), 3)}), {e.ulps:.3g} ulps away")
        if others:
            lines.append(f"  evaluations outside the model that give it: {_some(others)}")
        return lines

    def replay(self) -> str:
        return replay_command(self.impl, self.fmt, self.case, self.model)

    def message(self) -> str:
        fmt = self.fmt
        lines = [f"{self.prop} failed: {self.impl.name} in {fmt.name}, {self.regime} case: "
                 f"{self.detail}"]
        lines += [f"  {n:>2} = {float_hex(v):<24} = {v!r}" for n, v in zip(INPUTS, self.case)]
        if self.quantity is not None and self.exact is not None:
            lines.append(f"  {self.quantity}: exact    = {exact_decimal(self.exact, 30)}")
            obs = self.observed
            lines.append(f"  {self.quantity}: observed = {float_hex(obs)} = {obs!r}")
            if obs is not None and math.isfinite(obs):
                err = abs(Fraction(obs) - self.exact)
                scale = exact_scales(*self.case)[NODE_OF[self.quantity]]
                ulps = as_float(err / fmt.ulp(self.exact))
                of_scale = as_float(err / scale_ulp(fmt, scale))
                lines.append(f"  error = {as_float(err):.6g} = {ulps:.3g} ulp of the exact value")
                lines.append(f"        = {of_scale:.3g} ulp of its scale {as_float(scale):.6g} "
                             "(the step on |inputs|)")
                if self.bound is not None:
                    b = Fraction(self.bound)
                    if b == 0:
                        lines.append(f"  bound ({self.model.name}) = 0: every admitted "
                                     "evaluation gives the exact value, so any error fails")
                    else:
                        lines.append(f"  bound ({self.model.name}) = {as_float(b):.6g} = "
                                     f"{as_float(b / fmt.ulp(self.exact)):.3g} ulp; "
                                     f"error/bound = {as_float(err / b):.3g}")
            lines += self._variant_lines()
        lines.append(f"  replay: {self.replay()}")
        return "\n".join(lines)


def _lazy(name: str) -> property:
    """The dataclass field ``name`` as a property: a callable given for it is called when the
    field is first read, and its result kept (evaluating every variant on a case takes
    milliseconds; hypothesis's shrinking and a check of a wrong implementation make hundreds of
    findings whose message is never read)."""
    key = f"_lazy_{name}"

    def get(self):
        value = self.__dict__[key]
        if callable(value):
            value = self.__dict__[key] = value()
        return value

    def set(self, value) -> None:
        self.__dict__[key] = value

    return property(get, set, doc=f"{name} (computed when first read if given as a function)")


Finding.variants = _lazy("variants")
Finding.nearest = _lazy("nearest")


def _some(names: list, most: int = 6) -> str:
    return ", ".join(names[:most]) + (f" (and {len(names) - most} more)" if len(names) > most
                                      else "")


class PropertyViolation(AssertionError):
    """A property failed; the message is the finding's standalone report, composed when first
    read (most violations raised while hypothesis shrinks are caught and never shown)."""

    def __init__(self, finding: Finding) -> None:
        super().__init__()
        self.finding = finding
        self._message: Optional[str] = None

    def __str__(self) -> str:
        if self._message is None:
            self._message = self.finding.message()
        return self._message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self):
        return type(self), (self.finding,)
