"""Schemathesis over mECR's own OpenAPI document, in-process, with the fuzzer's oracle.

FastAPI's document declares each route's path parameters but not FHIR's query parameters or bodies (the routes
read them from the request), so :func:`fuzz_schema` fills in what a FHIR client sends: the resource types mECR
serves, the seeded ids, the common search and result parameters, and FHIR JSON bodies. Schemathesis then
generates schema-conforming and schema-violating cases (``GenerationMode.POSITIVE`` and ``NEGATIVE``) for every
operation; each case is sent by a randomly drawn principal (patient A, coach, system client) through the same
TestClient and oracle as ``test_fuzz_api.py``.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from fhir_ecr.store.searchparams import search_params

from .conftest import EXAMPLES
from .oracle import check_response
from .seed import A, B, Seeded
from .strategies import FOCUS, OPERATIONS, Req
from .test_fuzz_api import fuzz_settings

_QUERY = (
    "_count",
    "_offset",
    "_cursor",
    "_since",
    "_sort",
    "_summary",
    "_elements",
    "_total",
    "_format",
    "_include",
    "_revinclude",
    "_id",
    "_lastUpdated",
    "patient",
    "subject",
    "code",
    "date",
    "name",
    "identifier",
    "member",
    "status",
    "from",
    "to",
)
_HEADERS = ("If-Match", "If-None-Exist", "Prefer")
_SKIP = {
    "/smart/launch",
    "/smart/login",
    "/smart/callback",
    "/smart/logout",
}  # browser redirects, tested elsewhere


def fuzz_schema(spec: dict[str, Any], world: Seeded) -> dict[str, Any]:
    """``spec`` (the app's OpenAPI document) with FHIR's parameters and bodies declared."""
    spec = copy.deepcopy(spec)
    ids = sorted({*world.all_b_ids(), *(i for v in world.a_ids.values() for i in v), A, B, "group-ab"})
    path_schemas = {
        "rtype": {"type": "string", "enum": [*FOCUS, *sorted(set(search_params()) - set(FOCUS)), "Nope"]},
        "rid": {"anyOf": [{"type": "string", "enum": [*ids, *OPERATIONS]}, {"type": "string"}]},
        "patient_id": {"anyOf": [{"type": "string", "enum": [A, B]}, {"type": "string"}]},
        "op": {"type": "string", "enum": [*OPERATIONS, "_history", "x"]},
        "vid": {"anyOf": [{"type": "string", "pattern": "^[0-9]{1,25}$"}, {"type": "string"}]},
    }
    resource = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {
            "resourceType": {"type": "string", "enum": [*FOCUS, "Bundle", "Parameters"]},
            "id": {"type": "string"},
            "subject": {
                "type": "object",
                "properties": {"reference": {"type": "string", "enum": [f"Patient/{A}", f"Patient/{B}"]}},
            },
            "status": {"type": "string"},
            "entry": {"type": "array", "items": {"type": "object"}},
            "parameter": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "valueString": {"type": "string"}},
                },
            },
        },
    }
    for path in list(spec["paths"]):
        if path in _SKIP:
            del spec["paths"][path]
            continue
        for method, op in spec["paths"][path].items():
            params = op.setdefault("parameters", [])
            for p in params:
                if p.get("in") == "path" and p["name"] in path_schemas:
                    p["schema"] = path_schemas[p["name"]]
            if path.startswith("/fhir"):
                params += [
                    {"name": q, "in": "query", "required": False, "schema": {"type": "string"}}
                    for q in _QUERY
                ]
                params += [
                    {"name": h, "in": "header", "required": False, "schema": {"type": "string"}}
                    for h in _HEADERS
                ]
                if method in ("post", "put") and "requestBody" not in op:
                    op["requestBody"] = {
                        "required": False,
                        "content": {"application/fhir+json": {"schema": resource}},
                    }
                if method == "patch":
                    op["requestBody"] = {
                        "required": True,
                        "content": {
                            "application/json-patch+json": {
                                "schema": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["op", "path"],
                                        "properties": {
                                            "op": {
                                                "type": "string",
                                                "enum": ["test", "add", "replace", "remove"],
                                            },
                                            "path": {"type": "string"},
                                            "value": {},
                                        },
                                    },
                                }
                            }
                        },
                    }
    return spec


def _req(case: Any) -> Req:
    kwargs = case.as_transport_kwargs(base_url="http://127.0.0.1:8000")
    url = urlsplit(kwargs["url"])
    params = [(str(k), str(v)) for k, v in (kwargs.get("params") or {}).items()]
    params += parse_qsl(url.query, keep_blank_values=True)
    headers = {
        k: str(v)
        for k, v in (kwargs.get("headers") or {}).items()
        if k.lower() not in ("user-agent", "accept-encoding", "connection", "x-schemathesis-testcaseid")
    }
    body = None
    if "json" in kwargs:
        body = json.dumps(kwargs["json"], ensure_ascii=False).encode("utf-8", "surrogatepass")
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        body = data if isinstance(data, bytes) else str(data).encode("utf-8", "surrogatepass")
    return Req(kwargs["method"], unquote(url.path), params, headers, body)


def test_openapi_fuzz(fuzz_world: Any) -> None:
    world = fuzz_world
    schema = schemathesis.openapi.from_dict(fuzz_schema(world.client.app.openapi(), world.world))
    operations = [result.ok() for result in schema.get_all_operations()]
    cases = st.one_of(
        [
            op.as_strategy(generation_mode=mode)
            for op in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
    )

    sent = []

    @fuzz_settings(EXAMPLES)
    @given(case=cases, who=st.sampled_from(["patient", "coach", "system"]))
    def run(case: Any, who: str) -> None:
        req = _req(case)
        sent.append(req)
        check_response(who, req, world.send(who, req), world.world, world.told)

    run()
    assert len(sent) >= EXAMPLES  # the cases were really generated and sent
