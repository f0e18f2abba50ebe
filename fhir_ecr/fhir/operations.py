"""``$operations`` as data: each declares its OperationDefinition once; one registry drives routing and the
CapabilityStatement, so the CapabilityStatement cannot list an operation that is not served or miss one that is.

An operation handler receives an :class:`OperationCall` and returns a FHIR resource (dict) or a Response.
Handlers that touch the database are plain functions run in the thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from ..auth.access import Access
from ..canonical import operation_definition
from ..outcomes import bad_request, not_supported
from ..services import Services
from ..store.repository import FhirRepository

__all__ = ["Operation", "OperationCall", "OperationRegistry", "registry", "parameters_to_pairs"]


@dataclass
class OperationCall:
    """What a handler gets: the request, the app's services, where it was invoked, and its parameters."""

    request: Request
    services: Services
    resource_type: str | None
    resource_id: str | None
    params: list[tuple[str, Any]]
    body: Any = None  # the parsed JSON body of a POST (a Parameters resource or another resource)
    repo: FhirRepository = field(
        kw_only=True
    )  # the repository as the caller sees it (guarded by their Access)
    access: Access = field(kw_only=True)  # the caller's Access

    @property
    def instance_id(self) -> str:
        """The resource id of an instance-level call (``[type]/[id]/$op``); 400 for a type- or system-level one."""
        if self.resource_id is None:
            raise bad_request("this operation is invoked on one resource: [type]/[id]/$operation")
        return self.resource_id

    def get(self, name: str, default: Any = None) -> Any:
        for key, value in self.params:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[Any]:
        return [v for k, v in self.params if k == name]


@dataclass
class Operation:
    """One ``$operation``: its definition and handler."""

    name: str
    title: str
    description: str
    handler: Callable[[OperationCall], Any]
    resource_types: tuple[str, ...] = ()
    system: bool = False
    type: bool = False
    instance: bool = False
    affects_state: bool = False
    parameters: list[dict[str, Any]] = field(default_factory=list)
    code: str = ""

    def __post_init__(self) -> None:
        self.code = self.code or self.name

    @property
    def canonical(self) -> str:
        return operation_definition(self.name)

    def definition(self) -> dict[str, Any]:
        """The OperationDefinition resource."""
        return {
            "resourceType": "OperationDefinition",
            "id": self.name,
            "url": self.canonical,
            "name": self.title.replace(" ", ""),
            "title": self.title,
            "status": "active",
            "kind": "operation",
            "description": self.description,
            "code": self.code,
            "affectsState": self.affects_state,
            **({"resource": list(self.resource_types)} if self.resource_types else {}),
            "system": self.system,
            "type": self.type,
            "instance": self.instance,
            "parameter": self.parameters,
        }


class OperationRegistry:
    """The operations the server serves, by name."""

    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}

    def register(self, op: Operation) -> Operation:
        if op.name in self._ops:
            raise ValueError(f"operation ${op.name} registered twice")
        self._ops[op.name] = op
        return op

    def all(self) -> list[Operation]:
        return sorted(self._ops.values(), key=lambda o: o.name)

    def find(self, name: str, resource_type: str | None, instance: bool) -> Operation:
        """The operation ``$name`` invoked at this level, or a 400/404-style OperationOutcome."""
        op = self._ops.get(name.lstrip("$"))
        if op is None:
            raise not_supported(f"operation {name} is not supported", 404)
        if resource_type is None and not op.system:
            raise not_supported(f"operation {name} cannot be invoked at system level", 400)
        if resource_type is not None:
            if op.resource_types and resource_type not in op.resource_types:
                raise not_supported(f"operation {name} is not defined for {resource_type}", 400)
            if instance and not op.instance:
                raise not_supported(f"operation {name} cannot be invoked on an instance", 400)
            if not instance and not op.type:
                raise not_supported(f"operation {name} cannot be invoked at type level", 400)
        return op


def parameters_to_pairs(body: Any) -> list[tuple[str, Any]]:
    """(name, value) pairs from a ``Parameters`` resource body (value[x], resource or parts)."""
    if body is None:
        return []
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad_request("an operation body must be a Parameters resource")
    pairs: list[tuple[str, Any]] = []
    for p in body.get("parameter", []) or []:
        if not isinstance(p, dict) or "name" not in p:
            raise bad_request("each Parameters.parameter needs a name", "Parameters.parameter")
        value: Any = p.get("resource")
        if value is None:
            value = next((v for k, v in p.items() if k.startswith("value")), None)
        if value is None and "part" in p:
            value = p["part"]
        pairs.append((p["name"], value))
    return pairs


registry = OperationRegistry()
