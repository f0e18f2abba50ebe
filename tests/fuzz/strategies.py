"""FHIR-aware hypothesis strategies: requests to mECR built from the resource types it serves, the real search
parameter names (``fhir_ecr/store/searchparams.py``) and values an attacker or a broken client would send.

A request is a :class:`Req`. The strategies lean towards the seeded world (:mod:`tests.fuzz.seed`): ids are
mostly those of patient A's and patient B's resources, so that a search, read, write or operation aimed at B is
tried from every angle, and the rest are odd ids (too long, bad characters, NUL, unicode).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st

from fhir_ecr.store.searchparams import search_params

from .seed import A, B, Seeded

__all__ = ["Req", "requests"]

#: The types the fuzzer aims at most (those the seeded world holds), then every other served type.
FOCUS = (
    "Patient",
    "Observation",
    "Goal",
    "CarePlan",
    "Communication",
    "Encounter",
    "Group",
    "Device",
    "Practitioner",
    "AuditEvent",
)
RESULT = (
    "_count",
    "_offset",
    "_cursor",
    "_sort",
    "_include",
    "_revinclude",
    "_include:iterate",
    "_summary",
    "_elements",
    "_total",
    "_format",
    "_pretty",
    "_since",
    "_has",
    "_type",
    "_list",
    "_text",
    "_content",
)
MODIFIERS = (
    "",
    ":missing",
    ":exact",
    ":contains",
    ":not",
    ":text",
    ":below",
    ":above",
    ":Patient",
    ":Group",
    ":iterate",
    ":identifier",
    ":bogus",
)
PREFIXES = ("", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "zz")
ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "%00",
        "%",
        "_",
        "\\",
        "\\,",
        ",",
        "|",
        "||",
        "'",
        '"',
        "--",
        ";",
        "*",
        "?",
        "😀",
        "Ω",
        "ﬁ",
        "İ",
        "\u202e",
        "\ufeff",
        "\ud7ff",
        "²",
        "٣",
        "x" * 65,
        "x" * 300,
        "null",
        "[]",
        "{}",
    ]
)
DATES = st.sampled_from(
    [
        "2026",
        "2026-03",
        "2026-03-05",
        "2026-03-05T10:00",
        "2026-03-05T10:00:00Z",
        "2026-03-05T10:00:00.123456789Z",
        "9999-12-31T23:59:59-12:00",
        "0001-01-01T00:00:00+14:00",
        "2016-12-31T23:59:60Z",
        "0001",
        "9999",
        "9999-12",
        "0000",
        "2026-02-30",
        "2026-13",
        "2026-03-05T24:00:00Z",
        "2026-03-05T10:00:00+15:00",
        "2026-03-05T10:00:00+14:59",
        "20260305",
        "2026-3-5",
        "yesterday",
        "1e9",
        "-2026",
    ]
)
NUMBERS = st.one_of(
    st.sampled_from(
        [
            "0",
            "-0",
            "1.50",
            "1e308",
            "1e-400",
            "1e99999",
            "NaN",
            "Infinity",
            "-Infinity",
            "123456789012345678901234567890",
            "0x10",
            "1_000",
            "²",
            "9" * 400,
            ".",
            "-",
            "1.2.3",
        ]
    ),
    st.integers().map(str),
    st.floats(allow_nan=True).map(str),
)
INTS = st.one_of(
    st.sampled_from(
        [
            "0",
            "1",
            "-1",
            "2147483647",
            "2147483648",
            "9223372036854775807",
            "9223372036854775808",
            "99999999999999999999999",
            "²",
            "1.5",
            "1e3",
            " 1",
            "0x1f",
            "zzzzzzzzzzzzz",
            "a",
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)


@dataclass
class Req:
    """One HTTP request: ``params`` go to the query string (repeats allowed), ``body`` is the raw body."""

    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def text(self) -> str:
        """Everything the caller sent, for "did the caller already know this?" checks."""
        return " ".join(
            [
                self.path,
                urlencode(self.params),
                json.dumps(self.headers),
                (self.body or b"").decode("utf-8", "replace"),
            ]
        )

    def __repr__(self) -> str:
        body = (self.body or b"")[:300]
        return f"Req({self.method} {self.path}?{urlencode(self.params)[:300]} headers={self.headers} body={body!r})"


def _ids(world: Seeded) -> st.SearchStrategy[str]:
    known = sorted(
        {
            *world.all_b_ids(),
            *(i for ids in world.a_ids.values() for i in ids),
            *(i for ids in world.shared.values() for i in ids),
        }
    )
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(known),
        ODD_TEXT,
        st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True),
        st.text(max_size=70),
    )


def _rtypes() -> st.SearchStrategy[str]:
    served = sorted(search_params())
    return st.one_of(
        st.sampled_from(FOCUS),
        st.sampled_from(FOCUS),
        st.sampled_from(served),
        st.sampled_from(["Nope", "patient", "Bundle", "OperationOutcome", "$everything", "_history"]),
    )


def _references(world: Seeded) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            [
                f"Patient/{B}",
                f"Patient/{A}",
                B,
                A,
                "Group/group-ab",
                "Device/fzb-dev",
                f"http://127.0.0.1:8000/fhir/Patient/{B}",
                f"Patient/{B}/_history/1",
                "Practitioner/fuzz-coach",
                "urn:uuid:x",
                "#contained",
                "Patient/",
            ]
        ),
        _ids(world).map(lambda i: f"Patient/{i}"),
        ODD_TEXT,
    )


def _value(world: Seeded, ptype: str) -> st.SearchStrategy[str]:
    """A search value for a parameter of ``ptype``: usually sensible, often odd."""
    plain = {
        "date": DATES,
        "number": NUMBERS,
        "quantity": st.tuples(
            NUMBERS, st.sampled_from(["", "|http://unitsofmeasure.org|kg", "||kg", "|x|"])
        ).map("".join),
        "token": st.sampled_from(
            [
                "http://loinc.org|41950-7",
                "|male",
                "http://loinc.org|",
                "41950-7",
                "final",
                "urn:fuzz:mrn|MRN-x",
                "true",
                "a,b",
                "a\\,b",
                "|",
            ]
        ),
        "reference": _references(world),
        "string": st.one_of(st.sampled_from(["Anselm3Kw", "zeb", "a", "Ω", "%", "_"]), st.text(max_size=20)),
        "uri": st.sampled_from(["http://x", "urn:a", "https://mecr.dev/fhir/StructureDefinition/", "*"]),
    }.get(ptype, st.text(max_size=10))
    prefixed = (
        st.tuples(st.sampled_from(PREFIXES), plain).map("".join)
        if ptype in ("date", "number", "quantity")
        else plain
    )
    return st.one_of(prefixed, prefixed, prefixed, ODD_TEXT, st.text(max_size=30))


@st.composite
def search_pairs(draw: st.DrawFn, world: Seeded, rtype: str) -> list[tuple[str, str]]:
    """Search parameters of ``rtype``: real names with modifiers, chains and result parameters."""
    params = search_params().get(rtype, {})
    names = sorted(params) or ["_id"]
    pairs: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 9))
        if kind <= 5:
            name = draw(st.sampled_from(names))
            ptype = params[name].type if name in params else "token"
            key = name + draw(st.sampled_from(MODIFIERS))
            pairs.append((key, draw(_value(world, ptype))))
        elif kind <= 7:
            refs = [n for n in names if n in params and params[n].type == "reference"] or names
            hops = draw(
                st.lists(
                    st.sampled_from(
                        [
                            "subject",
                            "patient",
                            "member",
                            "link",
                            "device",
                            "sender",
                            "recipient",
                            "performer",
                            "general-practitioner",
                            "focus",
                            "entity",
                            "based-on",
                            "part-of",
                            "item",
                        ]
                    ),
                    min_size=0,
                    max_size=5,
                )
            )
            tail = draw(st.sampled_from(["name", "identifier", "_id", "family", "code", "birthdate"]))
            type_mod = draw(st.sampled_from(["", ":Patient", ":Group", ":Device"]))
            key = ".".join([draw(st.sampled_from(refs)) + type_mod, *hops, tail])
            pairs.append((key, draw(st.one_of(st.sampled_from([B_NAME, "Anselm3Kw", B, "x"]), ODD_TEXT))))
        elif kind == 8:
            target = draw(
                st.sampled_from(
                    [
                        "Observation:subject",
                        "Observation:patient",
                        "Communication:recipient",
                        "Group:member",
                        "Goal:patient",
                        "Device:patient",
                    ]
                )
            )
            inner = draw(st.sampled_from(["code", "_id", "status", "note", "value-string"]))
            pairs.append(
                (f"_has:{target}:{inner}", draw(st.one_of(st.sampled_from(["final", "x"]), ODD_TEXT)))
            )
        else:
            name = draw(st.sampled_from(RESULT))
            value = draw(
                st.one_of(
                    INTS,
                    st.sampled_from(
                        [
                            "date",
                            "-date",
                            "_id",
                            "name",
                            "bogus",
                            "true",
                            "count",
                            "text",
                            "data",
                            "false",
                            "accurate",
                            "none",
                            "json",
                            "xml",
                            "Observation:subject",
                            "Observation:patient:Patient",
                            "Group:member",
                            "*",
                            "Observation:device",
                            "Device:patient",
                        ]
                    ),
                    DATES,
                    ODD_TEXT,
                )
            )
            pairs.append((name, value))
    return pairs


B_NAME = "Zebulon"  # a prefix of B's marker: a name search a patient may try


def _resource(world: Seeded, rtype: str) -> st.SearchStrategy[dict[str, Any]]:
    """Near-valid resources of ``rtype``: a valid skeleton, then fields broken, swapped or aimed at B."""
    ref = _references(world)
    skeletons: dict[str, Any] = {
        "Observation": st.fixed_dictionaries(
            {
                "status": st.sampled_from(["final", "bogus", ""]),
                "code": st.just({"coding": [{"system": "http://loinc.org", "code": "41950-7"}]}),
                "subject": ref.map(lambda r: {"reference": r}),
                "effectiveDateTime": DATES,
                "valueQuantity": st.fixed_dictionaries(
                    {
                        "value": st.one_of(
                            st.integers(), st.floats(allow_nan=False), st.just(10**30), st.just("1.50")
                        )
                    }
                ),
            },
            optional={
                "performer": st.lists(ref.map(lambda r: {"reference": r}), max_size=2),
                "device": ref.map(lambda r: {"reference": r}),
                "note": st.lists(st.fixed_dictionaries({"text": ODD_TEXT}), max_size=1),
            },
        ),
        "Communication": st.fixed_dictionaries(
            {
                "status": st.just("completed"),
                "subject": ref.map(lambda r: {"reference": r}),
                "recipient": st.lists(ref.map(lambda r: {"reference": r}), max_size=2),
                "sent": DATES,
                "payload": st.just([{"contentString": "hi"}]),
            }
        ),
        "Goal": st.fixed_dictionaries(
            {
                "lifecycleStatus": st.sampled_from(["active", "nope"]),
                "description": st.just({"text": "walk"}),
                "subject": ref.map(lambda r: {"reference": r}),
                "target": st.lists(st.fixed_dictionaries({"dueDate": DATES}), max_size=1),
            }
        ),
        "Patient": st.fixed_dictionaries(
            {
                "name": st.lists(st.fixed_dictionaries({"family": ODD_TEXT}), max_size=1),
                "birthDate": DATES,
                "link": st.lists(
                    st.fixed_dictionaries(
                        {"other": ref.map(lambda r: {"reference": r}), "type": st.just("seealso")}
                    ),
                    max_size=1,
                ),
                "identifier": st.lists(
                    st.fixed_dictionaries({"system": st.just("urn:fuzz:mrn"), "value": ODD_TEXT}), max_size=1
                ),
            }
        ),
        "Encounter": st.fixed_dictionaries(
            {
                "status": st.just("finished"),
                "class": st.just({"code": "VR"}),
                "subject": ref.map(lambda r: {"reference": r}),
                "period": st.fixed_dictionaries({"start": DATES, "end": DATES}),
            }
        ),
        "Device": st.fixed_dictionaries({"patient": ref.map(lambda r: {"reference": r})}),
        "Group": st.fixed_dictionaries(
            {
                "type": st.just("person"),
                "actual": st.just(True),
                "member": st.lists(ref.map(lambda r: {"entity": {"reference": r}}), max_size=2),
            }
        ),
    }
    base = skeletons.get(rtype, st.just({}))

    def finish(body: dict[str, Any], rid: str | None, extra: dict[str, Any]) -> dict[str, Any]:
        out = {"resourceType": rtype, **body, **extra}
        if rid is not None:
            out["id"] = rid
        return out

    extra = st.dictionaries(
        st.sampled_from(
            ["meta", "text", "extension", "contained", "implicitRules", "bogus", "id", "resourceType"]
        ),
        st.one_of(
            ODD_TEXT,
            st.just({"profile": ["https://mecr.dev/fhir/StructureDefinition/x"]}),
            st.just([{"url": "x"}]),
            st.just(None),
        ),
        max_size=2,
    )
    return st.builds(finish, base, st.one_of(st.none(), _ids(world)), extra)


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def _patch_ops(draw: st.DrawFn, world: Seeded) -> list[dict[str, Any]]:
    ops = []
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["test", "replace", "add", "remove", "copy", "move", "bogus"]))
        path = draw(
            st.sampled_from(
                [
                    "/name/0/family",
                    "/subject/reference",
                    "/status",
                    "/id",
                    "/meta/versionId",
                    "/note/0/text",
                    "/identifier/-",
                    "/link",
                    "/",
                    "",
                    "/~1",
                    "/a/b/c/d",
                ]
            )
        )
        item: dict[str, Any] = {"op": op, "path": path}
        if op in ("test", "replace", "add"):
            item["value"] = draw(
                st.one_of(
                    ODD_TEXT,
                    st.sampled_from([f"Patient/{B}", "final", B_NAME]),
                    st.just({"reference": f"Patient/{B}"}),
                )
            )
        if op in ("copy", "move"):
            item["from"] = draw(st.sampled_from(["/subject", "/id", "/x"]))
        ops.append(item)
    return ops


OPERATIONS = (
    "$everything",
    "$coaching-summary",
    "$run-chart",
    "$check-in",
    "$habit",
    "$pdsa",
    "$coaching-session",
    "$validate",
    "$billing-preview",
    "$billing-export",
    "$superbill",
    "$nope",
)


@st.composite
def _parameters(draw: st.DrawFn, world: Seeded) -> dict[str, Any]:
    names = [
        "patient",
        "code",
        "from",
        "to",
        "habitId",
        "status",
        "date",
        "quantity",
        "action",
        "title",
        "schedule",
        "timesPerWeek",
        "everyDays",
        "start",
        "end",
        "until",
        "reason",
        "coach",
        "modality",
        "goal",
        "_since",
        "_count",
        "_offset",
        "_type",
        "resource",
    ]
    parameter = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(names))
        kind = draw(
            st.sampled_from(
                ["valueString", "valueDate", "valueCode", "valueReference", "valueQuantity", "valueInteger"]
            )
        )
        value = draw(
            {
                "valueString": st.one_of(
                    DATES, INTS, ODD_TEXT, st.sampled_from(["walk", "done", "add", "video"])
                ),
                "valueDate": DATES,
                "valueCode": st.sampled_from(["done", "partly", "pause", "per-week", "x"]),
                "valueReference": _references(world).map(lambda r: {"reference": r}),
                "valueQuantity": st.fixed_dictionaries({"value": st.one_of(st.integers(), st.floats())}),
                "valueInteger": st.integers(),
            }[kind]
        )
        parameter.append({"name": name, kind: value})
    return {"resourceType": "Parameters", "parameter": parameter}


@st.composite
def requests(draw: st.DrawFn, world: Seeded) -> Req:
    """One request of any kind the API serves."""
    rtype = draw(_rtypes())
    rid = draw(_ids(world))
    kind = draw(
        st.sampled_from(
            [
                "search",
                "search",
                "search",
                "post-search",
                "read",
                "vread",
                "history",
                "create",
                "update",
                "patch",
                "delete",
                "conditional",
                "bundle",
                "operation",
                "operation",
                "other",
            ]
        )
    )
    headers: dict[str, str] = {}
    if draw(st.integers(0, 5)) == 0:
        headers[
            draw(
                st.sampled_from(
                    [
                        "If-Match",
                        "If-None-Match",
                        "If-None-Exist",
                        "Prefer",
                        "Accept",
                        "Content-Type",
                        "X-CSRF-Token",
                    ]
                )
            )
        ] = draw(
            st.one_of(
                st.sampled_from(
                    [
                        'W/"1"',
                        'W/"99999999999999999999"',
                        "return=representation",
                        "handling=strict",
                        "application/fhir+xml",
                        f"_id={B}",
                        "subject=Patient/fuzz-b",
                        "*",
                    ]
                ),
                ODD_TEXT,
            )
        )
    if kind == "search":
        return Req("GET", f"/fhir/{rtype}", draw(search_pairs(world, rtype)), headers)
    if kind == "post-search":
        form = urlencode(draw(search_pairs(world, rtype))).encode()
        return Req(
            "POST",
            f"/fhir/{rtype}/_search",
            [],
            {"Content-Type": "application/x-www-form-urlencoded", **headers},
            form,
        )
    if kind == "read":
        return Req(
            "GET",
            f"/fhir/{rtype}/{rid}",
            draw(
                st.lists(
                    st.tuples(
                        st.sampled_from(["_summary", "_elements", "_format"]),
                        st.sampled_from(["true", "count", "id", "x"]),
                    ),
                    max_size=1,
                )
            ),
            headers,
        )
    if kind == "vread":
        return Req("GET", f"/fhir/{rtype}/{rid}/_history/{draw(INTS)}", [], headers)
    if kind == "history":
        path = draw(
            st.sampled_from([f"/fhir/{rtype}/{rid}/_history", f"/fhir/{rtype}/_history", "/fhir/_history"])
        )
        params = draw(
            st.lists(
                st.tuples(st.sampled_from(["_since", "_count", "_offset", "_at"]), st.one_of(DATES, INTS)),
                max_size=3,
            )
        )
        return Req("GET", path, params, headers)
    if kind in ("create", "update", "conditional"):
        body = _json(draw(_resource(world, rtype)))
        ctype = {
            "Content-Type": draw(
                st.sampled_from(
                    [
                        "application/fhir+json",
                        "application/json",
                        "text/plain",
                        "application/fhir+json; charset=utf-8",
                    ]
                )
            )
        }
        if kind == "create":
            return Req("POST", f"/fhir/{rtype}", [], {**ctype, **headers}, body)
        if kind == "update":
            return Req("PUT", f"/fhir/{rtype}/{rid}", [], {**ctype, **headers}, body)
        method = draw(st.sampled_from(["PUT", "DELETE", "POST"]))
        return Req(
            method,
            f"/fhir/{rtype}",
            draw(search_pairs(world, rtype)),
            {**ctype, **headers},
            body if method != "DELETE" else None,
        )
    if kind == "patch":
        return Req(
            "PATCH",
            f"/fhir/{rtype}/{rid}",
            [],
            {"Content-Type": "application/json-patch+json", **headers},
            _json(draw(_patch_ops(world))),
        )
    if kind == "delete":
        return Req("DELETE", f"/fhir/{rtype}/{rid}", [], headers)
    if kind == "bundle":
        entries = []
        for _ in range(draw(st.integers(0, 3))):
            method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]))
            et = draw(_rtypes())
            url = draw(
                st.sampled_from(
                    [
                        f"{et}/{draw(_ids(world))}",
                        et,
                        f"{et}?{urlencode(draw(search_pairs(world, et)))}",
                        f"{et}/{B}/_history/1",
                        f"{et}/x/_history/{draw(INTS)}",
                        "",
                    ]
                )
            )
            entry: dict[str, Any] = {"request": {"method": method, "url": url}}
            if method in ("POST", "PUT"):
                entry["resource"] = draw(_resource(world, et))
            if method == "PATCH":
                entry["resource"] = {
                    "resourceType": "Binary",
                    "contentType": "application/json-patch+json",
                    "data": "W10=",
                }
            entries.append(entry)
        bundle = {
            "resourceType": "Bundle",
            "type": draw(st.sampled_from(["batch", "transaction", "searchset"])),
            "entry": entries,
        }
        return Req("POST", "/fhir", [], {"Content-Type": "application/fhir+json", **headers}, _json(bundle))
    if kind == "operation":
        op = draw(st.sampled_from(OPERATIONS))
        path = draw(
            st.sampled_from(
                [
                    f"/fhir/{rtype}/{rid}/{op}",
                    f"/fhir/{rtype}/{op}",
                    f"/fhir/Patient/{A}/{op}",
                    f"/fhir/Patient/{B}/{op}",
                    f"/fhir/CarePlan/{world.plan_a}/{op}",
                    f"/fhir/Observation/{op}",
                    f"/fhir/Claim/{op}",
                ]
            )
        )
        params = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(
                        [
                            "patient",
                            "code",
                            "from",
                            "to",
                            "_since",
                            "_count",
                            "_offset",
                            "_type",
                            "date",
                            "format",
                            "payer",
                        ]
                    ),
                    st.one_of(DATES, INTS, st.sampled_from([A, B, "http://loinc.org|41950-7"]), ODD_TEXT),
                ),
                max_size=4,
            )
        )
        if draw(st.booleans()):
            return Req("GET", path, params, headers)
        return Req(
            "POST",
            path,
            params,
            {"Content-Type": "application/fhir+json", **headers},
            _json(draw(_parameters(world))),
        )
    # everything else the app serves: discovery, pages, the upload, the token endpoint
    other = draw(
        st.sampled_from(
            [
                Req("GET", "/fhir/metadata"),
                Req("GET", "/fhir/.well-known/smart-configuration"),
                Req("GET", "/app/me"),
                Req("GET", f"/app/patients/{B}"),
                Req("GET", "/app/caseload"),
                Req(
                    "POST",
                    "/auth/token",
                    [],
                    {"Content-Type": "application/x-www-form-urlencoded"},
                    b"grant_type=client_credentials&scope=system%2F*.rs",
                ),
                Req(
                    "POST",
                    f"/api/patients/{B}/wearable-imports",
                    [],
                    {"Content-Type": "multipart/form-data; boundary=x"},
                    b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.json"\r\n\r\n{}\r\n--x--\r\n',
                ),
                Req(
                    "POST",
                    f"/api/patients/{A}/wearable-imports",
                    [],
                    {"Content-Type": "multipart/form-data; boundary=x"},
                    b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.json"\r\n\r\n{"body":1}\r\n--x--\r\n',
                ),
            ]
        )
    )
    return Req(
        other.method,
        other.path,
        draw(search_pairs(world, "Patient")) if other.method == "GET" else [],
        {**other.headers, **headers},
        other.body,
    )
