"""JSON that keeps every number exactly as it was written: ``1.50`` stays ``1.50``.

FHIR decimals carry their precision (https://hl7.org/fhir/R4/datatypes.html#decimal: "0.010 is regarded as
different to 0.01, and the original precision should be preserved"; the spec allows "a combination of a (64 bit)
floating point value with a precision field"), and in R4 JSON a decimal is a JSON number, whose digits carry that
precision. orjson, the fast parser mECR uses, reads each number as a binary float or a 64-bit
integer and writes it back in its own shortest form: ``1.50`` → ``1.5``, ``1e-7`` stays ``1e-7`` but ``1E-7``
becomes ``1e-7``, ``-0`` → ``0``, an integer beyond 64 bits → ``1.2345678901234568e+29``.

:func:`loads` therefore takes two paths:

- **fast** (most resources): orjson parses the text and writes the result back; when that is the text itself,
  apart from white space, every number was already in orjson's form and orjson's result is the answer. (Both
  texts are the same value, so their tokens pair up one to one; with white space removed, equal texts mean
  equal tokens, numbers included. A string escaped differently, ``\\u00e9`` for ``é``, makes a false alarm:
  it costs time, never exactness.) The check is a ``dumps`` and a comparison (after two ``bytes.translate``
  when the text has white space): 1.3-2 times ``orjson.loads`` alone (docs/benchmarks.md), where a
  regular-expression scan of the text for risky numbers, tried first, cost 5-10 times.
- **exact**: otherwise the stdlib parser reads the text again and each number orjson would change becomes an
  :class:`ExactFloat` (a ``float`` that remembers its text) or an :class:`ExactInt` (an ``int`` beyond 64 bits, or
  ``-0``); every other number is the plain ``int``/``float`` orjson gives, so code that computes with values
  sees the same types on both paths, and arithmetic works as it always did (the result is a plain float).

orjson parses first on both paths, so both accept the same documents (RFC 8259, valid UTF-8, no ``NaN``; a number
beyond the double range such as ``1e400`` is refused), nested at most 254 levels deep: orjson reads 1024 levels
but writes only 254, and a document that could be read but not written back would fail later. The exact path
also refuses a number with more than 16383 digits after the decimal point once written out (``1e-20000``) or an
exponent beyond ±16383: PostgreSQL's ``numeric``, which holds JSONB numbers, cannot store it, and a document must
not be storable on one database and not on the other.

:func:`dumps` is ``orjson.dumps`` with a ``default`` that writes :class:`ExactFloat`, :class:`ExactInt` and
:class:`decimal.Decimal` values verbatim (``orjson.Fragment``); a document without them costs what orjson costs.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

__all__ = ["loads", "dumps", "same", "ExactFloat", "ExactInt", "JSONDecodeError", "may_change"]

#: What :func:`loads` raises for text that is not JSON (a ``ValueError``; ``orjson.JSONDecodeError``).
JSONDecodeError = orjson.JSONDecodeError

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

# A non-integer number token (one with a fraction or an exponent) that orjson may not write back as it was read:
# the exact path keeps such tokens' text (integers: see _int). Checked against orjson itself by
# tests/store/test_jsonexact.py over every short token and many long ones; it errs only towards "may change".
#   16+ digits       beyond what a double keeps (15 significant digits)
#   exponent         orjson writes exponents its own way (1E5 → 100000.0, 1.5e-10 → 1.5e-10, 1e16 → 1e+16)
#   x.y0             a fraction with a trailing zero after its first digit (1.50 → 1.5; 2.0 stays 2.0)
#   0.0000           below 1e-4, where orjson switches to exponent form (0.000001 → 1e-6)
_RISKY = r"-?(?:(?:[0-9]\.?){16}|[0-9]+(?:\.[0-9]+)?[eE]|[0-9]+\.[0-9]+0(?![0-9])|0\.0000)"
_RISKY_TOKEN = re.compile(_RISKY)
_WHITE_SPACE = b" \t\n\r"  # the only white space JSON allows between tokens (RFC 8259 section 2)

_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1
#: The most digits after the decimal point a number may have written out (PostgreSQL's numeric: 16383).
MAX_SCALE = 16383
#: The deepest nesting of arrays and objects orjson writes (it reads up to 1024).
MAX_DEPTH = 254


class ExactFloat(float):
    """A float read from JSON text that orjson would write differently; :func:`dumps` writes ``text``.

    ``ExactFloat("1.50") == 1.5``; ``str()`` and ``repr()`` give the text; arithmetic gives plain floats.
    """

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> ExactFloat:
        if not _NUMBER.fullmatch(text):
            raise ValueError(f"not a JSON number: {text[:40]!r}")
        self = super().__new__(cls, text)
        self.text = text
        return self

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return ExactFloat, (self.text,)


class ExactInt(int):
    """An integer read from JSON text that orjson cannot write as it was (beyond 64 bits, or ``-0``)."""

    text: str

    def __new__(cls, text: str) -> ExactInt:
        if not _NUMBER.fullmatch(text) or any(c in text for c in ".eE"):
            raise ValueError(f"not a JSON integer: {text[:40]!r}")
        self = super().__new__(cls, text)
        self.text = text
        return self

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return ExactInt, (self.text,)


def _as_orjson_writes(data: bytes, value: Any) -> bool:
    """Whether ``data`` is, white space apart, what orjson writes for ``value`` (parsed from ``data``)."""
    try:
        again = orjson.dumps(value)
    except TypeError:  # orjson reads 1024 levels but writes 254: refuse what could not be written back
        raise JSONDecodeError(f"the document is nested more than {MAX_DEPTH} levels deep", "", 0) from None
    return data == again or data.translate(None, _WHITE_SPACE) == again.translate(None, _WHITE_SPACE)


def may_change(data: bytes | str) -> bool:
    """Whether ``data`` (JSON text) may hold a number that orjson would not write back as it is written, that
    is whether :func:`loads` takes its exact path."""
    raw = data.encode() if isinstance(data, str) else data
    return not _as_orjson_writes(raw, orjson.loads(raw))


def _float(token: str) -> float:
    if not _RISKY_TOKEN.match(token):
        return float(token)
    mantissa, _, exponent = token.lower().partition("e")
    power = int(exponent) if exponent and len(exponent) <= 7 else 0
    if len(exponent) > 7 or abs(power) > MAX_SCALE or len(mantissa.partition(".")[2]) - power > MAX_SCALE:
        raise ValueError(
            f"the number {token[:24]}{'…' if len(token) > 24 else ''} is out of range: at most "
            f"{MAX_SCALE} digits after the decimal point and an exponent within ±{MAX_SCALE}"
        )
    return ExactFloat(token)


def _int(token: str) -> int:
    if token == "-0":
        return ExactInt(token)
    if len(token) > 18:
        value = int(token)
        return value if _I64_MIN <= value <= _U64_MAX else ExactInt(token)
    return int(token)


def _reject_constant(name: str) -> Any:  # the stdlib parser accepts NaN and Infinity; JSON does not
    raise ValueError(f"{name} is not JSON")


_exact_decoder = json.JSONDecoder(parse_float=_float, parse_int=_int, parse_constant=_reject_constant)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON text, keeping every number's exact form (see the module docstring). Raises
    :data:`JSONDecodeError` (a ``ValueError``) when ``data`` is not JSON."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    value = orjson.loads(data)  # validates, and is the answer for most documents
    if _as_orjson_writes(data.encode() if isinstance(data, str) else data, value):
        return value
    text = data.decode() if isinstance(data, bytes) else data
    try:
        return _exact_decoder.decode(text)
    except RecursionError:  # orjson allows 1024 levels, the stdlib parser fewer
        raise JSONDecodeError("the document is nested too deeply", text, 0) from None
    except ValueError as exc:  # not expected once orjson has accepted the text; still a decode error
        raise JSONDecodeError(str(exc), text, 0) from None


def _default(obj: Any) -> Any:
    kind = type(obj)
    if kind is ExactFloat or kind is ExactInt:
        return orjson.Fragment(obj.text)
    if isinstance(obj, Decimal):
        if obj.is_finite():
            return orjson.Fragment(str(obj))
        raise TypeError(f"{obj} is not a JSON number")
    # OPT_PASSTHROUGH_SUBCLASS sends every subclass of str, int, float, dict and list here: write its base value
    # (str.__str__ rather than str(): an Enum's __str__ is not its value).
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, int):
        return int.__int__(obj)
    if isinstance(obj, float):
        return float.__float__(obj)
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, list):
        return list(obj)
    raise TypeError(f"{kind.__name__} is not JSON serializable")


def dumps(obj: Any, option: int = 0) -> bytes:
    """``orjson.dumps`` that writes :class:`ExactFloat`, :class:`ExactInt` and ``Decimal`` values verbatim."""
    return orjson.dumps(obj, default=_default, option=option | orjson.OPT_PASSTHROUGH_SUBCLASS)


def same(a: Any, b: Any) -> bool:
    """Whether two parsed documents are equal *including* how their numbers are written: ``1.5`` and ``1.50``
    are equal as Python values but not the same FHIR decimal. Key order does not matter."""
    return bool(a == b) and dumps(a, orjson.OPT_SORT_KEYS) == dumps(b, orjson.OPT_SORT_KEYS)
