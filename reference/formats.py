"""Binary floating-point formats as data, and correct rounding of exact values to them.

Every value of float16, bfloat16, float32 and float64 is also a binary64 value, so a value *in*
a format is carried as a Python ``float`` (signed zeros and infinities included).  Exact values
(``int``, ``fractions.Fraction``, ``mpmath.mpf`` or ``float``) are rounded to a format with
:meth:`Format.round`, which implements IEEE 754 roundTiesToEven with gradual underflow and
overflow to infinity, using integer arithmetic only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from fractions import Fraction
from typing import Union

import mpmath

Exact = Union[int, float, Fraction, "mpmath.mpf"]

__all__ = [
    "Format",
    "as_float",
    "FLOAT16",
    "BFLOAT16",
    "FLOAT32",
    "FLOAT64",
    "FORMATS",
    "X87",
    "get_format",
    "to_fraction",
    "float_hex",
    "parse_hex",
    "parse_exact",
    "MAX_EXPONENT",
    "exact_hex",
    "exact_decimal",
]


def to_fraction(value: Exact) -> Fraction:
    """The exact rational value of a finite ``int``, ``float``, ``Fraction`` or ``mpf``."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, bool):
        raise TypeError("a bool is not a numeric value here")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no exact rational value")
        return Fraction(value)  # exact: float -> Fraction never rounds
    if isinstance(value, mpmath.mpf):
        sign, man, exp, _ = value._mpf_
        if man == 0 and exp != 0:  # mpmath's encoding of inf/nan
            raise ValueError(f"{value!r} has no exact rational value")
        n = -man if sign else man
        return Fraction(n << exp) if exp >= 0 else Fraction(n, 1 << -exp)
    raise TypeError(
        f"cannot take the exact value of {type(value).__name__} {value!r}; "
        "pass int, float, fractions.Fraction or mpmath.mpf "
        "(decimal strings must be converted with Format.parse first)"
    )


def as_float(value) -> float:
    """float(value), or a signed infinity where the value is beyond binary64's range (for
    reporting ratios and errors that can be astronomically large)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _ratio(value: Exact) -> tuple[bool, int, int]:
    """(negative, |numerator|, denominator) of an exact value, without normalising (fast)."""
    if isinstance(value, float):
        n, d = value.as_integer_ratio()  # raises on inf/nan
    elif isinstance(value, mpmath.mpf):
        sign, man, exp, _ = value._mpf_
        if man == 0 and exp != 0:
            raise ValueError(f"{value!r} has no exact rational value")
        return bool(sign), man << max(exp, 0), 1 << max(-exp, 0)
    elif isinstance(value, Fraction):
        n, d = value.numerator, value.denominator
    elif isinstance(value, int) and not isinstance(value, bool):
        n, d = value, 1
    else:
        to_fraction(value)  # raises the explanatory TypeError
        raise AssertionError("unreachable")
    return n < 0, abs(n), d


@dataclass(frozen=True)
class Format:
    """An IEEE 754 binary format: precision ``p`` (with the hidden bit) and exponent range.

    Normal numbers are ``m * 2**(e - p + 1)`` with ``2**(p-1) <= m < 2**p`` and
    ``emin <= e <= emax``; subnormals have ``e = emin`` and ``m < 2**(p-1)``.
    """

    name: str
    p: int
    emin: int
    emax: int

    # --- derived constants, all exact ---------------------------------------------------
    @cached_property
    def u(self) -> Fraction:
        """Unit roundoff 2**-p: the relative error bound of round-to-nearest."""
        return Fraction(1, 1 << self.p)

    @cached_property
    def eta(self) -> Fraction:
        """Half the smallest subnormal: the absolute error bound of an underflowing product."""
        return self.smallest_subnormal_exact / 2

    @cached_property
    def quantum_exponent(self) -> int:
        """Exponent of the smallest subnormal, emin - p + 1."""
        return self.emin - self.p + 1

    @cached_property
    def smallest_subnormal_exact(self) -> Fraction:
        return Fraction(2) ** self.quantum_exponent

    @cached_property
    def smallest_subnormal(self) -> float:
        return math.ldexp(1.0, self.quantum_exponent)

    @cached_property
    def smallest_normal(self) -> float:
        return math.ldexp(1.0, self.emin)

    @cached_property
    def largest_finite_exact(self) -> Fraction:
        return Fraction(2) ** self.emax * (2 - Fraction(2) ** (1 - self.p))

    @cached_property
    def largest_finite(self) -> float:
        return float(self.largest_finite_exact)

    @cached_property
    def overflow_threshold(self) -> Fraction:
        """Smallest magnitude that rounds to infinity: 2**emax * (2 - 2**-p)."""
        return Fraction(2) ** self.emax * (2 - Fraction(2) ** (-self.p))

    # --- rounding ---------------------------------------------------------------------------
    def round(self, value: Exact) -> float:
        """Round an exact finite value to this format, ties to even; exact zero gives +0.0.

        A nonzero value that underflows to zero keeps its sign; magnitudes at or above
        :attr:`overflow_threshold` give infinity.  A Python ``float`` input is taken as the
        exact binary64 value it holds (infinities pass through, NaN stays NaN).
        """
        if isinstance(value, float):
            if not math.isfinite(value):
                return value
            if value == 0.0:
                return value  # keeps the sign of a binary64 zero
        negative, n, d = _ratio(value)
        return self.round_ratio(-n if negative else n, d)

    def round_ratio(self, numerator: int, denominator: int) -> float:
        """Round the exact value numerator/denominator (denominator > 0) to this format."""
        negative = numerator < 0
        n, d = abs(numerator), denominator
        if n == 0:
            return 0.0
        if not d & (d - 1):  # dyadic (every product or sum of binary values): shifts only
            return self._round_dyadic(negative, n, d.bit_length() - 1)
        # e = floor(log2(n/d)): start from the bit lengths and correct by one if needed.
        e = n.bit_length() - d.bit_length()
        if (n << max(0, -e)) < (d << max(0, e)):
            e -= 1
        qexp = max(e, self.emin) - self.p + 1  # exponent of the last kept bit
        if qexp >= 0:
            m, rem = divmod(n, d << qexp)
            den = d << qexp
        else:
            m, rem = divmod(n << -qexp, d)
            den = d
        twice = 2 * rem
        if twice > den or (twice == den and m & 1):
            m += 1
        if m == 0:
            return -0.0 if negative else 0.0
        # m < 2**p, or m == 2**p after a carry: either way m * 2**qexp is in binary64's range
        # for every format here except float64 overflow, checked first.
        if qexp + m.bit_length() - 1 > self.emax:
            return -math.inf if negative else math.inf
        result = math.ldexp(float(m), qexp)  # exact: m has at most p+1 <= 54 bits, no carry loss
        return -result if negative else result

    def round_exact(self, value: Exact) -> "float | Fraction":
        """Round an exact value to this format, for formats wider than binary64 (x87): a
        nonzero finite result as an exact ``Fraction``, a zero or an infinity as a signed
        ``float``.  (For the four parameter formats :meth:`round` gives the same value as a
        float.)  A float input passes its zeros, infinities and NaN through."""
        if isinstance(value, float) and (value == 0.0 or not math.isfinite(value)):
            return value
        negative, n, d = _ratio(value)
        if n == 0:
            return 0.0
        e = n.bit_length() - d.bit_length()
        if (n << max(0, -e)) < (d << max(0, e)):
            e -= 1
        qexp = max(e, self.emin) - self.p + 1  # exponent of the last kept bit
        num, den = (n, d << qexp) if qexp >= 0 else (n << -qexp, d)
        m, rem = divmod(num, den)
        if 2 * rem > den or (2 * rem == den and m & 1):
            m += 1
        if m == 0:
            return -0.0 if negative else 0.0
        if qexp + m.bit_length() - 1 > self.emax:
            return -math.inf if negative else math.inf
        q = Fraction(m << qexp) if qexp >= 0 else Fraction(m, 1 << -qexp)
        return -q if negative else q

    def _round_dyadic(self, negative: bool, n: int, k: int) -> float:
        """Round n * 2**-k (n > 0)."""
        e = n.bit_length() - 1 - k
        qexp = max(e, self.emin) - self.p + 1
        shift = qexp + k  # low bits of n below the last kept bit
        if shift <= 0:
            m = n << -shift
        else:
            m = n >> shift
            rem = n & ((1 << shift) - 1)
            half = 1 << (shift - 1)
            if rem > half or (rem == half and m & 1):
                m += 1
            if m == 0:
                return -0.0 if negative else 0.0
        if qexp + m.bit_length() - 1 > self.emax:
            return -math.inf if negative else math.inf
        result = math.ldexp(float(m), qexp)
        return -result if negative else result

    def contains(self, value: float) -> bool:
        """True when the binary64 value ``value`` is a value of this format (infinities included)."""
        if not math.isfinite(value):
            return not math.isnan(value)
        if value == 0.0:
            return True
        m, e = math.frexp(value)  # value = m * 2**e, 0.5 <= |m| < 1
        if e - 1 > self.emax:
            return False
        # the value's last set bit must not lie below the format's last kept bit
        last = max(e - 1, self.emin) - self.p + 1
        return math.ldexp(value, -last).is_integer()

    def check(self, value: float, what: str = "value") -> float:
        """Return ``value`` if it is a finite value of this format, else raise ``ValueError``."""
        if not isinstance(value, float):
            raise TypeError(f"{what} must be a float held in {self.name}, got {type(value).__name__}")
        if not math.isfinite(value) or not self.contains(value):
            raise ValueError(
                f"{what} = {value!r} is not a finite {self.name} value; "
                f"round it first with {self.name.upper()}.round(...) or parse it with .parse(...)"
            )
        return value

    # --- spacing --------------------------------------------------------------------------
    def exponent(self, value: Exact) -> int:
        """The exponent of the binade holding ``value`` (clamped below at emin)."""
        q = abs(to_fraction(value))
        if q == 0:
            return self.emin
        n, d = q.numerator, q.denominator
        e = n.bit_length() - d.bit_length()
        if (n << max(0, -e)) < (d << max(0, e)):
            e -= 1
        return max(e, self.emin)

    def ulp(self, value: Exact) -> Fraction:
        """Unit in the last place at ``value``: 2**(max(floor(log2|x|), emin) - p + 1).

        For a magnitude above the largest finite value this is the ulp of the top binade;
        ulp(0) is the smallest subnormal.
        """
        e = min(self.exponent(value), self.emax)
        return Fraction(2) ** (e - self.p + 1)

    def ulp_error(self, computed: float, exact: Exact) -> "Fraction | float":
        """|computed - exact| in units of ulp(exact) of this format (inf if computed is not finite)."""
        if not math.isfinite(computed):
            return math.inf
        q = to_fraction(exact)
        return abs(Fraction(computed) - q) / self.ulp(q)

    def next_up(self, value: float) -> float:
        """The least value of this format greater than ``value`` (IEEE nextUp)."""
        if isinstance(value, float) and math.isnan(value):
            return value  # IEEE nextUp(NaN) is NaN
        self._require_member(value)
        if value == math.inf:
            return value
        if value == -math.inf:
            return -self.largest_finite
        if value == 0.0:
            return self.smallest_subnormal
        if value > 0:
            if value == self.largest_finite:
                return math.inf
            return value + self._float_ulp(value)  # exact: the next grid point is a binary64 value
        a = -value
        gap = self._float_ulp(a)
        if math.frexp(a)[0] == 0.5 and math.frexp(a)[1] - 1 > self.emin:
            gap /= 2  # just below a power of two the spacing halves
        return -(a - gap)  # -0.0 when value was the negative smallest subnormal

    def _float_ulp(self, a: float) -> float:
        return math.ldexp(1.0, max(math.frexp(a)[1] - 1, self.emin) - self.p + 1)

    def next_down(self, value: float) -> float:
        """The greatest value of this format less than ``value`` (IEEE nextDown)."""
        return -self.next_up(-value)

    def _require_member(self, value: float) -> None:
        if not isinstance(value, float) or not self.contains(value):
            raise ValueError(f"{value!r} is not a {self.name} value")

    # --- text -----------------------------------------------------------------------------
    def parse(self, text: str) -> float:
        """Convert a decimal or C99 hex literal to this format, correctly rounded.

        This is the one explicit place where a decimal like ``"0.1"`` becomes a binary value.
        Accepted: ``[+-]digits[.digits][e[+-]digits]``, ``[+-]0x hex[.hex][p[+-]digits]``,
        ``inf``, ``infinity``, ``nan`` (each with at most one sign).
        """
        if not isinstance(text, str):
            raise TypeError(f"parse takes a string, got {type(text).__name__}")
        s = text.strip()
        body = s[1:] if s[:1] in "+-" else s
        negative = s.startswith("-")
        low = body.lower()
        if low in ("inf", "infinity"):
            return -math.inf if negative else math.inf
        if low == "nan":
            return math.nan
        if low.startswith("0x"):
            hex_negative, digits, e = _hex_parts(s)
            if digits == 0:
                return -0.0 if hex_negative else 0.0
            if e + digits.bit_length() > 2048:  # beyond every format's range: no huge number
                return -math.inf if hex_negative else math.inf
            if e + digits.bit_length() < -2048:
                return -0.0 if hex_negative else 0.0
            q = _dyadic(hex_negative, digits, e, s)
        else:
            m = _DECIMAL.match(s)
            if not m or not ((m.group(2) or "") + (m.group(3) or "")):
                raise ValueError(
                    f"{text!r} is not a decimal or hex floating-point literal "
                    "(examples: '0.1', '-2.5e-3', '0x1.8p-3')")
            digits = (m.group(2) or "") + (m.group(3) or "")
            exp10 = int(m.group(4) or 0) - len(m.group(3) or "")
            mantissa = int(digits or "0")
            if mantissa == 0:
                return -0.0 if negative else 0.0
            lead = len(digits.lstrip("0")) + exp10  # decimal exponent just above the value
            if lead > 400:  # beyond every format's range: no need to build a huge Fraction
                return -math.inf if negative else math.inf
            if lead < -400:
                return -0.0 if negative else 0.0
            q = Fraction(mantissa) * Fraction(10) ** exp10
            if negative:
                q = -q
        r = self.round(q)
        if r == 0.0 and negative:
            return -0.0
        return r

    def hex(self, value: float) -> str:
        """C99 ``%a`` spelling of a value of this format (exact, normalised like printf)."""
        return float_hex(value)


def float_hex(value: float) -> str:
    """C99 ``%a`` formatting of a binary64 value: ``0x1.8p-3``, ``-0x0p+0``, ``inf``.

    Trailing zero hex digits are dropped, as glibc's ``printf("%a")`` does.  Subnormals of
    binary64 print as ``0x0.xxxp-1022``; values of narrower formats are normal binary64
    numbers and print normalised.
    """
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    text = value.hex()  # '0x1.8000000000000p-3'
    sign = ""
    if text.startswith("-"):
        sign, text = "-", text[1:]
    mant, exp = text[2:].split("p")
    if "." in mant:
        head, frac = mant.split(".")
        frac = frac.rstrip("0")
        mant = head + ("." + frac if frac else "")
    e = int(exp)
    return f"{sign}0x{mant}p{'+' if e >= 0 else '-'}{abs(e)}"


_DECIMAL = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$")
_HEX = re.compile(r"^([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?$")


#: Exact values read from outside (results files, protocol answers, vector files) may have binary
#: exponents this large in magnitude; an absurd exponent is refused before any big number is
#: built (every quantity of the step lies within 2**-3300 .. 2**2100 in magnitude).
MAX_EXPONENT = 100_000


def _hex_parts(text: str) -> tuple[bool, int, int]:
    """(negative, integer digits, binary exponent) of a C99 hex literal: value = digits * 2**e."""
    m = _HEX.match(text.strip())
    if not m or not (m.group(2) or m.group(3)):
        raise ValueError(
            f"{text!r} is not a C99 hex floating-point literal (example: '-0x1.99999ap-4')"
        )
    sign, head, frac, exp = m.groups()
    frac = frac or ""
    if exp and len(exp.lstrip("+-")) > 12:
        raise ValueError(f"{text!r}: its exponent is out of range (at most {MAX_EXPONENT})")
    return sign == "-", int((head or "0") + frac, 16), int(exp or 0) - 4 * len(frac)


def _dyadic(negative: bool, digits: int, e: int, text: str) -> Fraction:
    if digits and abs(e + digits.bit_length()) > MAX_EXPONENT:
        raise ValueError(f"{text!r}: its exponent is out of range (at most 2**{MAX_EXPONENT})")
    q = Fraction(digits) * Fraction(2) ** e
    return -q if negative else q


def parse_hex(text: str) -> Fraction:
    """The exact value of a C99 hex literal (no rounding; see :meth:`Format.parse` for that).
    An exponent beyond ``MAX_EXPONENT`` is refused (ValueError)."""
    return _dyadic(*_hex_parts(text), text)


def parse_exact(text: str) -> Fraction:
    """The exact value of a finite decimal or C99 hex literal (no rounding); an exponent beyond
    ``MAX_EXPONENT`` (binary) or a decimal one beyond a third of it is refused (ValueError)."""
    s = text.strip()
    if s.lstrip("+-").lower().startswith("0x"):
        return parse_hex(s)
    m = _DECIMAL.match(s)
    if not m or not ((m.group(2) or "") + (m.group(3) or "")):
        raise ValueError(f"{text!r} is not a decimal or hex number (examples: '0.1', "
                         "'-2.5e-3', '0x1.8p-3')")
    digits = (m.group(2) or "") + (m.group(3) or "")
    if m.group(4) and len(m.group(4).lstrip("+-")) > 12:
        raise ValueError(f"{text!r}: its exponent is out of range")
    exp10 = int(m.group(4) or 0) - len(m.group(3) or "")
    mantissa = int(digits or "0")
    if mantissa and abs(len(digits.lstrip("0")) + exp10) > MAX_EXPONENT // 3:
        raise ValueError(f"{text!r}: its exponent is out of range (at most "
                         f"10**{MAX_EXPONENT // 3})")
    q = Fraction(mantissa) * Fraction(10) ** exp10
    return -q if m.group(1) == "-" else q


def exact_hex(value: Exact) -> str:
    """The exact hex spelling of a dyadic rational (any number of digits): '0x1.8p-3'."""
    q = to_fraction(value)
    if q == 0:
        return "0x0p+0"
    sign = "-" if q < 0 else ""
    n, d = abs(q.numerator), q.denominator
    e = -(d.bit_length() - 1)  # value = n * 2**e
    top = n.bit_length() - 1
    frac_bits = top
    # normalise to 1.xxx p(top + e), padding the fraction to whole hex digits
    pad = (-frac_bits) % 4
    digits = format((n - (1 << top)) << pad, "x").rjust((frac_bits + pad) // 4, "0") if top else ""
    digits = digits.rstrip("0")
    exp = top + e
    return f"{sign}0x1{'.' + digits if digits else ''}p{'+' if exp >= 0 else '-'}{abs(exp)}"


def exact_decimal(value: Exact, digits: int = 25) -> str:
    """The exact decimal expansion of a binary value, cut (not rounded) to ``digits``
    significant digits with a trailing '…' when longer; scientific outside 1e-5..1e17."""
    q = to_fraction(value)
    if q == 0:
        return "-0" if isinstance(value, float) and math.copysign(1.0, value) < 0 else "0"
    sign = "-" if q < 0 else ""
    n, d = abs(q.numerator), q.denominator
    k = d.bit_length() - 1  # d == 2**k for a binary value, so n/d == n*5**k / 10**k
    full = str(n * 5**k)
    e10 = len(full) - 1 - k  # decimal exponent of the leading digit
    sig = full.rstrip("0")
    mark = ""
    if len(sig) > digits:
        sig, mark = sig[:digits], "…"
    if -5 <= e10 < 17:
        if e10 >= 0:
            sig = sig.ljust(e10 + 1, "0")
            whole, frac = sig[: e10 + 1], sig[e10 + 1:]
        else:
            whole, frac = "0", "0" * (-e10 - 1) + sig
        return sign + whole + ("." + frac if frac else "") + mark
    return f"{sign}{sig[0]}{'.' + sig[1:] if len(sig) > 1 else ''}{mark}e{e10:+d}"


FLOAT16 = Format("float16", p=11, emin=-14, emax=15)
BFLOAT16 = Format("bfloat16", p=8, emin=-126, emax=127)
FLOAT32 = Format("float32", p=24, emin=-126, emax=127)
FLOAT64 = Format("float64", p=53, emin=-1022, emax=1023)

FORMATS: dict[str, Format] = {f.name: f for f in (FLOAT16, BFLOAT16, FLOAT32, FLOAT64)}

#: x87 extended precision (the 80-bit format: 64 significand bits, 15 exponent bits), where C
#: evaluates double expressions under FLT_EVAL_METHOD == 2.  A *work* format, not a parameter
#: format: its values are carried as exact ``Fraction``s (:meth:`Format.round_exact`).
X87 = Format("x87", p=64, emin=-16382, emax=16383)


def get_format(name: "str | Format") -> Format:
    """Look a format up by name (``"float32"``), or pass a :class:`Format` through."""
    if isinstance(name, Format):
        return name
    try:
        return FORMATS[str(name)]
    except KeyError:
        raise ValueError(
            f"unknown format {name!r}; choose one of {', '.join(FORMATS)}"
        ) from None
