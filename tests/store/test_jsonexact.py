"""fhir_ecr.store.jsonexact: every number comes back exactly as it was written, and the fast path is orjson."""

from __future__ import annotations

import copy
import enum
import itertools
import pickle
import random
from decimal import Decimal

import orjson
import pytest

from fhir_ecr.store import jsonexact
from fhir_ecr.store.jsonexact import ExactFloat, ExactInt, dumps, loads, may_change, same

# The edge cases of HL7's own decimal example (R4 observation-decimal.json) and the ones orjson changes.
EDGE = [
    "1.0",
    "1.00",
    "1E-22",
    "1000000000000000000",
    "1.000000000000000000E-245",
    "-1.000000000000000000E+245",
    "1.50",
    "0.10",
    "100.000",
    "2.0",
    "2.00",
    "1e5",
    "1E5",
    "1.5E-3",
    "1.5e+3",
    "1e-7",
    "-0",
    "-0.0",
    "-0.00",
    "0.00001",
    "0.000001",
    "0.0001",
    "0",
    "7",
    "-7",
    "72.5",
    "0.1",
    "123456789012345678901234567890",
    "-123456789012345678901234567890",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "1234567890123456",
    "123456789012345.6",
    "12345678901234.5",
    "1.0000000000000002",
    "9007199254740993",
    "5e-324",
    "1e-400",
    "1.7976931348623157e308",
    "0.30000000000000004",
]


def _random_tokens(rng: random.Random, n: int) -> list[str]:
    """JSON number tokens of every shape: integers of 1-25 digits, fractions with and without trailing or
    leading zeros, exponents of both cases and signs."""

    def digits(k: int, first_nonzero: bool = False) -> str:
        out = "".join(rng.choice("0123456789") for _ in range(k))
        return (rng.choice("123456789") + out[1:]) if first_nonzero and k else out

    tokens = []
    for _ in range(n):
        sign = "-" if rng.random() < 0.3 else ""
        k = rng.choice([1, 1, 2, 3, 5, 8, 12, 14, 15, 16, 17, 19, 20, 25])
        whole = "0" if rng.random() < 0.3 else digits(k, first_nonzero=True)
        token = sign + whole
        shape = rng.random()
        if shape < 0.7:
            frac = ("0" * rng.choice([0, 0, 1, 3, 4, 6])) + digits(rng.choice([1, 1, 2, 3, 6, 10, 15, 17]))
            if rng.random() < 0.3:
                frac += "0" * rng.choice([1, 2, 3])
            token += "." + frac
        if shape > 0.55:
            token += (
                rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.choice([0, 1, 5, 15, 16, 22, 300]))
            )
        tokens.append(token)
    return tokens


def _valid(token: str) -> bool:
    """Whether mECR accepts the number: within the double range (orjson) and within PostgreSQL's numeric."""
    try:
        loads(f"[{token}]")
    except jsonexact.JSONDecodeError:
        return False
    return True


@pytest.mark.parametrize("token", EDGE)
def test_edge_numbers_round_trip_verbatim(token: str) -> None:
    for doc in (f"[{token}]", f'{{"value": {token}}}', f'{{"a" :\n\t{token} , "b":[ {token},{token}]}}'):
        compact = "".join(doc.split())
        assert dumps(loads(doc.encode())) == compact.encode(), doc
        assert dumps(loads(doc)) == compact.encode(), doc


def test_every_number_round_trips_verbatim() -> None:
    """The property the fast path relies on: when may_change() says no, orjson writes back what it read.
    Tried on 60,000 random tokens of every shape (seeded: a failure is reproducible)."""
    rng = random.Random(20240612)
    tokens = [t for t in _random_tokens(rng, 60_000) if _valid(t)]
    assert len(tokens) > 55_000
    fast = 0
    for token in tokens:
        doc = f"[{token}]"
        assert dumps(loads(doc)) == doc.encode(), token
        if not may_change(doc):
            fast += 1
            assert orjson.dumps(orjson.loads(doc)) == doc.encode(), token
    assert fast > 5_000  # the check is not simply "always slow"
    many = "[" + ",".join(tokens[:5000]) + "]"
    assert dumps(loads(many)) == many.encode()


def _short_tokens(length: int, digits: str = "0159") -> list[str]:
    """Every JSON number token of at most ``length`` characters over a few digits (the grammar of RFC 8259)."""
    whole = ["0"] + [
        "".join(t) for n in range(1, length + 1) for t in itertools.product(digits, repeat=n) if t[0] != "0"
    ]
    out = []
    for base in (sign + w for sign in ("", "-") for w in whole):
        fractions = [""] + [
            "." + "".join(t)
            for n in range(1, length - len(base))
            for t in itertools.product(digits, repeat=n)
        ]
        for mantissa in (base + f for f in fractions if len(base + f) <= length):
            out.append(mantissa)
            for mark in (e + s for e in "eE" for s in ("", "+", "-")):
                out += [
                    mantissa + mark + "".join(t)
                    for n in range(1, length - len(mantissa) - len(mark) + 1)
                    for t in itertools.product(digits, repeat=n)
                ]
    return out


def test_every_short_number_is_kept_and_classified_soundly() -> None:
    """Exhaustively, every number of up to 7 characters (digits 0, 1, 5, 9), next to a number that forces the
    exact path: it comes back verbatim, and when it is parsed as a plain int or float (not an exact value),
    orjson writes it back as it was written."""
    tokens = [t for t in _short_tokens(7) if _valid(t)]
    assert len(tokens) > 100_000 and "-0.0e+1" in tokens and "9.9" in tokens
    plain = 0
    for token in tokens:
        doc = f"[1.50,{token}]"
        value = loads(doc)
        assert dumps(value) == doc.encode(), token
        if type(value[1]) in (int, float):
            plain += 1
            assert orjson.dumps(value[1]) == token.encode(), token
    assert plain > 20_000  # the exact path keeps plain numbers plain


def test_numbers_orjson_changes_become_exact_values() -> None:
    doc = loads(b'{"a": 1.50, "b": 7.5, "c": 3, "d": 123456789012345678901234567890, "e": -0, "f": 1e5}')
    assert type(doc["a"]) is ExactFloat and doc["a"] == 1.5 and str(doc["a"]) == "1.50"
    assert type(doc["b"]) is float and type(doc["c"]) is int  # the others stay what orjson gives
    assert type(doc["d"]) is ExactInt and doc["d"] == 123456789012345678901234567890
    assert type(doc["e"]) is ExactInt and doc["e"] == 0 and str(doc["e"]) == "-0"
    assert type(doc["f"]) is ExactFloat and doc["f"] == 100000
    # arithmetic is plain float/int arithmetic
    assert (
        doc["a"] * 2 == 3.0 and type(doc["a"] * 2) is float and doc["d"] + 1 == 123456789012345678901234567891
    )
    assert f"{doc['a']:.1f}" == "1.5" and f"{doc['a']}" == "1.50"


def test_typical_resources_take_the_fast_path() -> None:
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "meta": {"versionId": "3", "lastUpdated": "2024-06-01T10:00:00.123456Z"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-06-01T08:30:00+02:00",
        "valueQuantity": {"value": 72.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
        "component": [
            {"code": {"text": "steps"}, "valueInteger": 10234},
            {"code": {"text": "ratio"}, "valueQuantity": {"value": 0.25}},
        ],
    }
    assert not may_change(orjson.dumps(observation))
    assert not may_change(orjson.dumps(observation, option=orjson.OPT_INDENT_2).decode())
    assert type(loads(orjson.dumps(observation))["valueQuantity"]["value"]) is float


def test_false_alarms_are_harmless() -> None:
    """Text that orjson would write differently for reasons other than numbers takes the exact path for nothing."""
    for doc in (b'{"text": "caf\\u00e9 \\/ dose: 1.50 mg", "value": 2}', b'{"a": 1, "a": 2}'):
        assert may_change(doc)
        assert loads(doc) == orjson.loads(doc) and dumps(loads(doc)) == orjson.dumps(orjson.loads(doc))
    assert not may_change(b'{"text": "dose: 1.50 mg, [1e5, 0.10]", "value": 2}')  # numbers inside strings


def test_white_space_does_not_matter() -> None:
    compact = orjson.dumps({"a": [1, 2.5, {"b": "x y"}], "c": 7})
    assert not may_change(compact)
    assert not may_change(b' {\n  "a" : [ 1 ,\t2.5, {"b": "x y"}],\r\n "c":7 } ')
    assert not may_change(b'{"a": [1, 2.5, {"b": "x y"}], "c": 7}')  # PostgreSQL's JSONB text


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"NaN",
        b"[Infinity]",
        b"[-Infinity]",
        b"[1e400]",
        b'{"a": 1.50,}',
        b'["\\ud800", 1.50]',
        b"\xef\xbb\xbf[1.50]",
        b"[01.50]",
        b"[1.]",
        b'{"a": 1.50} x',
        b"[" * 1025 + b"]" * 1025,
    ],
)
def test_both_paths_refuse_what_is_not_json(data: bytes) -> None:
    with pytest.raises(jsonexact.JSONDecodeError):
        loads(data)
    with pytest.raises(ValueError):
        loads(data.decode(errors="replace"))


def test_nesting_deeper_than_orjson_writes_is_refused() -> None:
    for doc in (b"[" * 254 + b"1.50" + b"]" * 254, b"[" * 254 + b"1.5" + b"]" * 254):
        assert dumps(loads(doc)) == doc
    for doc in (b"[" * 255 + b"]" * 255, b'{"a":' * 255 + b"1.50" + b"}" * 255):
        with pytest.raises(jsonexact.JSONDecodeError, match="nested more than 254 levels"):
            loads(doc)


def test_input_types() -> None:
    for data in (b"[1.50]", "[1.50]", bytearray(b"[1.50]"), memoryview(b"[1.50]"), "1.50", " 1.50 ", b"-0"):
        assert dumps(loads(data)) in (b"[1.50]", b"1.50", b"-0")


def test_dumps_writes_decimals_and_subclasses() -> None:
    class Colour(str, enum.Enum):  # noqa: UP042 - str.__str__ of a plain str Enum is its name
        red = "red"

    class Level(enum.IntEnum):
        high = 3

    class Tree(dict):  # type: ignore[type-arg]
        pass

    value = {
        "d": [Decimal("1.50"), Decimal("1E+5"), Decimal("-0")],
        "e": Colour.red,
        "i": Level.high,
        "t": Tree(a=[ExactFloat("0.10")]),
        "f": ExactFloat("1e-7"),
        "n": ExactInt("-0"),
    }
    assert dumps(value) == b'{"d":[1.50,1E+5,-0],"e":"red","i":3,"t":{"a":[0.10]},"f":1e-7,"n":-0}'
    assert dumps(value, option=orjson.OPT_INDENT_2).startswith(b'{\n  "d": [\n    1.50,')
    with pytest.raises(TypeError):
        dumps({"x": Decimal("NaN")})
    with pytest.raises(TypeError):
        dumps({"x": object()})


def test_exact_values_survive_copies_and_pickles() -> None:
    doc = loads('{"a": [1.50, 123456789012345678901234567890, -0]}')
    for other in (copy.deepcopy(doc), pickle.loads(pickle.dumps(doc))):
        assert dumps(other) == b'{"a":[1.50,123456789012345678901234567890,-0]}'


@pytest.mark.parametrize("text", ["1.5x", "", "01", "1.", ".5", "NaN", "1e"])
def test_exact_values_refuse_text_that_is_not_a_json_number(text: str) -> None:
    with pytest.raises(ValueError):
        ExactFloat(text)
    with pytest.raises(ValueError):
        ExactInt(text)
    with pytest.raises(ValueError):
        ExactInt("1.5")


def test_same_tells_precision_apart() -> None:
    assert same(loads('{"a": 1.50, "b": [1, 2]}'), loads('{"b": [1, 2], "a": 1.50}'))
    assert not same(loads('{"a": 1.50}'), loads('{"a": 1.5}'))
    assert loads('{"a": 1.50}') == loads('{"a": 1.5}')  # what plain equality says
    assert not same(loads('{"a": 1.50}'), loads('{"a": 1.51}'))
    assert not same(loads("[-0]"), loads("[0]"))


@pytest.mark.parametrize(
    "token", ["1e-20000", "0.5e-16383", "0e-16384", "0e99999", "1e-99999999999", "0." + "0" * 16383 + "1"]
)
def test_numbers_beyond_postgresql_numeric_are_refused(token: str) -> None:
    with pytest.raises(jsonexact.JSONDecodeError, match="out of range"):
        loads(f'{{"value": {token}}}')


@pytest.mark.parametrize("token", ["1e-16383", "0." + "0" * 16382 + "1", "1e308", "-1e-400"])
def test_numbers_up_to_the_limit_are_kept(token: str) -> None:
    assert str(loads(f"[{token}]")[0]) == token
