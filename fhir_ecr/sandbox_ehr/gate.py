"""The sandbox FHIR server's front door: a bearer token on every request, checked like a real EHR checks it.

:class:`FhirGate` is ASGI middleware around mECR's FHIR engine (serving the sandbox's own database). It

1. lets ``GET /fhir/metadata`` through anonymously (the CapabilityStatement is public) and refuses anything
   outside ``/fhir`` (the engine's own pages are not part of the sandbox);
2. requires ``Authorization: Bearer <token>`` issued by this sandbox for this FHIR base (signature, ``aud``,
   ``exp``, not revoked) — 401 OperationOutcome otherwise (RFC 6750 §3);
3. sets ``scope["state"]["principal"]`` to a :class:`fhir_ecr.auth.Principal`; the engine runs with
   ``auth="external"``, so its own :class:`fhir_ecr.auth.Access` checks scopes and compartment again;
4. enforces SMART scopes and the patient compartment itself first (403 OperationOutcome), the way an EHR does:
   ``user/`` and ``system/`` scopes reach everything of a type; ``patient/`` scopes (a patient's own, or a
   coach's in an EHR launch) reach only the context patient's compartment — reads are checked against the
   stored resource, searches are narrowed to the patient (and refused when they name another patient), writes
   must stay inside the compartment. Scopes with ``?query`` filters grant nothing here. A coach allowed only
   through ``patient/`` scopes is handed to the engine as a patient-kind principal for that request, since
   ``Access`` honours ``patient/`` scopes only for patient principals.

Batch/transaction Bundles, system-level searches and operations need ``*`` scopes outside a compartment.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ..asgi import read_body, replay
from ..auth import Principal, in_patient_compartment
from ..outcomes import FhirError, NotFound, Unauthorized, forbidden, issue, too_large
from ..store.indexer import parse_reference
from ..store.repository import FhirRepository
from ..store.searchparams import patient_compartment, search_param
from .keys import InvalidJwt
from .oauth import AuthorizationServer

__all__ = ["FhirGate"]

_LETTER = {"GET": "s", "HEAD": "s", "POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}


def _compartment_types() -> frozenset[str]:
    return frozenset(k for k, v in patient_compartment().items() if v) | {"Patient"}


def _route_path(scope: Scope) -> str:
    path, root = str(scope["path"]), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


async def _send_outcome(send: Send, error: FhirError, extra_headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error.outcome).encode()
    headers = [(b"content-type", b"application/fhir+json"), (b"content-length", str(len(body)).encode())]
    for name, value in {**error.headers, **(extra_headers or {})}.items():
        headers.append((name.lower().encode(), value.encode()))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class FhirGate:
    """Bearer-token authentication and SMART scope enforcement in front of the sandbox's FHIR engine."""

    def __init__(
        self, app: ASGIApp, server: AuthorizationServer, repo: FhirRepository, *, max_body_bytes: int
    ) -> None:
        self.app = app
        self.server = server
        self.repo = repo
        self.max_body_bytes = max_body_bytes
        self.compartment_types = _compartment_types()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        if path != "/fhir" and not path.startswith("/fhir/"):
            await _send_outcome(send, NotFound(issue("not-found", "no such page in the sandbox EHR"), 404))
            return
        segments = [s for s in path[len("/fhir") :].split("/") if s]
        method = scope["method"]
        if segments == ["metadata"] and method in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await _send_outcome(
                send,
                Unauthorized(issue("login", "a bearer access token is required"), 401),
                {"WWW-Authenticate": 'Bearer realm="sandbox-ehr"'},
            )
            return
        try:
            principal = self.server.principal(token.strip())
        except InvalidJwt as exc:
            await _send_outcome(
                send,
                Unauthorized(issue("login", f"invalid access token: {exc}"), 401),
                {
                    "WWW-Authenticate": f'Bearer realm="sandbox-ehr", error="invalid_token", error_description="{exc}"'
                },
            )
            return

        body: bytes | None = None
        if method in ("POST", "PUT"):
            try:
                body = await self._read_body(receive)
            except FhirError as exc:
                await _send_outcome(send, exc)
                return
        try:
            query, reach = await self._enforce(
                principal, method, segments, scope.get("query_string", b"").decode("latin-1"), headers, body
            )
        except FhirError as exc:
            await _send_outcome(send, exc)
            return
        if reach == "compartment" and principal.kind == "practitioner":
            # A coach allowed by patient/ scopes acts inside the launch patient's compartment: the engine's own
            # checks (fhir_ecr.auth.Access) confine exactly such a principal, so it is handed one.
            principal = dataclasses.replace(principal, kind="patient")
        scope = dict(scope)
        scope["state"] = {**scope.get("state", {}), "principal": principal}
        if query is not None:
            scope["query_string"] = query.encode()
        if body is not None:
            receive = replay(body, receive)
        await self.app(scope, receive, send)

    async def _read_body(self, receive: Receive) -> bytes:
        body, fits = await read_body(receive, self.max_body_bytes)
        if not fits:
            raise too_large(f"request body exceeds {self.max_body_bytes} bytes")
        return body

    # -- SMART scopes and the compartment ---------------------------------------------------------------------

    def _reach(self, p: Principal, rtype: str, letter: str) -> str | None:
        """``"all"`` (this type, any patient), ``"compartment"`` (only the context patient's) or None."""
        scopes = p.scopes
        if p.kind == "system":
            return "all" if scopes.allows(letter, rtype, "system") else None
        if p.kind == "patient":
            return "compartment" if scopes.allows(letter, rtype, "patient") else None
        if scopes.allows(letter, rtype, "user"):
            return "all"
        if p.patient_id and scopes.allows(letter, rtype, "patient"):
            return "compartment"
        return None

    def _require(self, p: Principal, rtype: str, letter: str) -> str:
        reach = self._reach(p, rtype, letter)
        if reach is None:
            words = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
            raise forbidden(f"the granted scopes do not permit {words[letter]} on {rtype}")
        return reach

    async def _stored(self, rtype: str, rid: str) -> dict[str, Any] | None:
        try:
            stored = await run_in_threadpool(self.repo.read, rtype, rid)
        except FhirError:
            return None  # absent or deleted: the engine answers 404/410 itself
        return stored.content

    def _inside(self, resource: dict[str, Any] | None, patient_id: str) -> bool:
        if resource is None:
            return True
        if resource.get("resourceType") not in self.compartment_types:
            return False
        return in_patient_compartment(resource, patient_id, self.server.fhir_base)

    async def _enforce(
        self,
        p: Principal,
        method: str,
        segs: list[str],
        query: str,
        headers: dict[str, str],
        body: bytes | None,
    ) -> tuple[str | None, str]:
        """Raise 403 unless allowed. Returns a narrowed query string for a compartment search (else None) and
        the reach the request was allowed with (``all`` or ``compartment``)."""
        if not segs or segs[0].startswith("$") or segs[0] == "_history":
            # Batch/transaction, system search/history, system operations: only with "*" scopes, no compartment.
            letters = "cruds" if method == "POST" and not segs else "s"
            for letter in letters:
                if self._require(p, "*", letter) != "all":
                    raise forbidden("system-level requests are not available inside a patient compartment")
            return None, "all"
        rtype = segs[0]
        rest = segs[1:]
        patient = p.patient_id if p.kind != "system" else None

        if not rest or rest == ["_search"] or rest == ["_history"]:
            letter = "s" if method in ("GET", "HEAD") or rest else _LETTER.get(method, "s")
            reach = self._require(p, rtype, letter)
            if reach == "all":
                return None, reach
            assert patient is not None
            if letter == "c":
                if "if-none-exist" in headers:
                    raise forbidden("conditional create is not available inside a patient compartment")
                self._check_body(rtype, body, patient)
                return None, reach
            if letter != "s" or rest:
                raise forbidden(
                    "conditional writes, POST searches and history are not available inside a "
                    "patient compartment"
                )
            return self._narrow_search(rtype, query, patient), reach

        rid = rest[0]
        if rid.startswith("$"):  # type-level operation
            if self._require(p, rtype, "s") != "all":
                raise forbidden("type-level operations are not available inside a patient compartment")
            return None, "all"
        if len(rest) > 1 and rest[1].startswith("$"):  # instance-level operation, e.g. Patient/x/$everything
            reach = self._require(p, rtype, "r")
            if reach == "compartment" and not (rtype == "Patient" and rid == patient):
                raise forbidden("a patient-context token may only run operations on its own Patient")
            return None, reach
        if len(rest) > 1 and rest[1] != "_history":
            raise forbidden("unsupported request")
        letter = "r" if method in ("GET", "HEAD") else _LETTER.get(method, "r")
        reach = self._require(p, rtype, letter)
        if reach == "all":
            return None, reach
        assert patient is not None
        if method == "PATCH":
            raise forbidden("PATCH is not available inside a patient compartment; use PUT")
        if rtype == "Patient" and rid != patient:
            raise forbidden("this token may only access its own patient's record")
        if not self._inside(await self._stored(rtype, rid), patient):
            raise forbidden(f"{rtype}/{rid} is outside the patient's record")
        if method == "PUT":
            self._check_body(rtype, body, patient)
        return None, reach

    def _check_body(self, rtype: str, body: bytes | None, patient: str) -> None:
        try:
            resource = json.loads(body or b"")
        except ValueError:
            return  # malformed: the engine answers 400
        if not isinstance(resource, dict) or resource.get("resourceType") != rtype:
            return
        if not self._inside(resource, patient):
            raise forbidden(f"the {rtype} would be outside the patient's record")

    def _narrow_search(self, rtype: str, query: str, patient: str) -> str | None:
        if rtype not in self.compartment_types:
            return None  # Practitioner, Organization, ...: not patient data
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.startswith("_revinclude") or name.endswith(":iterate") for name, _ in pairs):
            raise forbidden("_revinclude and :iterate are not available inside a patient compartment")
        if rtype == "Patient":
            link_params = {"_id"}
            narrowing = ("_id", patient)
        else:
            params = [c for c in patient_compartment().get(rtype, ()) if search_param(rtype, c) is not None]
            code = (
                "patient" if search_param(rtype, "patient") is not None else (params[0] if params else None)
            )
            if code is None:
                raise forbidden(f"{rtype} cannot be searched inside a patient compartment")
            link_params = set(params) | {"patient", "subject"}
            narrowing = (code, f"Patient/{patient}")
        for name, value in pairs:
            base = name.split(":", 1)[0]
            if base in link_params and "." not in name:
                for item in value.split(","):
                    t, i, _ = parse_reference(item, self.server.fhir_base)
                    target = i if t is not None else item
                    if t not in (None, "Patient") or target != patient:
                        raise forbidden("this token may only search its own patient's record")
        return urlencode([*pairs, narrowing])
