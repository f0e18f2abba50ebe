"""SMART scopes, v1 and v2, as data: parse a scope string, then ask what it permits.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html

Grammar of a resource scope (scopes-and-launch-context.md, "Scopes for requesting FHIR resources")::

    ( "patient" | "user" | "system" ) "/" ( ResourceType | "*" ) "."
        ( v2: [c][r][u][d][s], at least one letter, in that order
        | v1: "read" | "write" | "*" )
        [ "?" query ]                      ; v2 only: narrows the scope to matching resources

Meaning of the v2 letters: ``c`` create; ``r`` read, vread and instance history; ``u`` update and patch;
``d`` delete; ``s`` type search, type history, system search and history. v1 maps as ``read`` = ``rs``,
``write`` = ``cud``, ``*`` = ``cruds``. "Write does not imply read."

**Rule for invalid scope strings.** :meth:`ScopeSet.parse` is lenient by default: a token that is not
valid SMART or OpenID syntax (``patient/Observation.dus`` with out-of-order letters, ``Patient/x.read``,
``patient/Observation.read?x=1`` -- a query on a v1 scope --, ``launch/Patient``, vendor scopes) is kept
in :attr:`ScopeSet.unrecognized` and **grants nothing**; the spec lets a server "ignore or reject" such
scopes and ignoring them is the safe reading for both a client (granted scopes) and a server (authorizing
its API). With ``strict=True`` the first such token raises :class:`~smart_launch.errors.ScopeError`.

Scopes may be given in URI form (``http://smarthealthit.org/fhir/scopes/patient/*.rs``,
``http://openid.net/specs/openid-connect-core-1_0#openid``); they are understood as their short form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import parse_qsl

from .errors import ScopeError

__all__ = [
    "INTERACTION_CODES",
    "Context",
    "Interaction",
    "LaunchScope",
    "QueryFilter",
    "ResourceScope",
    "ScopeDecision",
    "ScopeSet",
    "interaction_code",
    "parse_scope",
]

Interaction = Literal["c", "r", "u", "d", "s"]
Context = Literal["patient", "user", "system"]

_INTERACTIONS: frozenset[str] = frozenset(get_args(Interaction))
_CONTEXTS: frozenset[str] = frozenset(get_args(Context))

#: FHIR RESTful interaction (CapabilityStatement codes) -> the SMART v2 letter that permits it.
#: ``batch``, ``transaction`` and ``operation`` are absent: "batch and transaction are judged per entry".
INTERACTION_CODES: dict[str, Interaction] = {
    "create": "c",
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "update": "u",
    "patch": "u",
    "delete": "d",
    "search-type": "s",
    "search-compartment": "s",
    "search-system": "s",
    "history-type": "s",
    "history-system": "s",
}

#: scopes-and-launch-context.md, "Scope Equivalence": v1 permission -> v2 letters.
_V1_PERMISSIONS: dict[str, str] = {"read": "rs", "write": "cud", "*": "cruds"}

_RESOURCE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]*)\.(?P<perm>[A-Za-z*]+)(?:\?(?P<query>.*))?$"
)
_V2_LETTERS = re.compile(r"^c?r?u?d?s?$")
# "launch/<lowercase resource type>", optionally "?role=<uri>" (scopes-and-launch-context.md).
_LAUNCH = re.compile(r"^launch(?:/(?P<context>[a-z]+)(?:\?role=(?P<role>[^&\s]+))?)?$")
_SIMPLE = frozenset({"openid", "fhirUser", "profile", "offline_access", "online_access"})
_URI_PREFIXES = ("http://smarthealthit.org/fhir/scopes/", "http://openid.net/specs/openid-connect-core-1_0#")

#: One query-filter set: ``(name, value)`` pairs that all have to match (``?a=1&b=2``).
QueryFilter = tuple[tuple[str, str], ...]


def interaction_code(fhir_interaction: str) -> Interaction:
    """The SMART letter for a FHIR RESTful interaction name (``"vread"`` -> ``"r"``, ``"patch"`` -> ``"u"``)."""
    try:
        return INTERACTION_CODES[fhir_interaction]
    except KeyError as exc:
        raise ScopeError(f"{fhir_interaction!r} is not an interaction that a SMART scope governs") from exc


@dataclass(frozen=True, slots=True)
class ResourceScope:
    """One ``context/Type.perm[?query]`` scope, normalised to v2 letters."""

    raw: str
    context: Context
    resource_type: str
    interactions: frozenset[Interaction]
    filters: QueryFilter = ()
    version: Literal[1, 2] = 2

    def grants(self, interaction: Interaction, resource_type: str, context: Context) -> bool:
        """Whether this scope covers the interaction (ignoring its query filter)."""
        return (
            context == self.context
            and interaction in self.interactions
            and self.resource_type in ("*", resource_type)
        )


@dataclass(frozen=True, slots=True)
class LaunchScope:
    """``launch`` (EHR launch) or ``launch/<context>`` (standalone context request, optional role)."""

    raw: str
    context: str | None = None
    role: str | None = None


Scope = ResourceScope | LaunchScope | str


@dataclass(frozen=True, slots=True)
class ScopeDecision:
    """The answer to "may I do interaction X on type T in context C?".

    ``allowed`` with empty ``filters``: unrestricted. ``allowed`` with ``filters``: only resources that
    match at least one of the filter sets (each set's pairs all apply). Not ``allowed``: denied.
    """

    allowed: bool
    filters: tuple[QueryFilter, ...] = ()

    @property
    def unrestricted(self) -> bool:
        return self.allowed and not self.filters


def _strip_uri(token: str) -> str:
    for prefix in _URI_PREFIXES:
        if token.startswith(prefix):
            return token[len(prefix) :]
    return token


def parse_scope(token: str) -> Scope | None:
    """Parse one scope token: a :class:`ResourceScope`, a :class:`LaunchScope`, a well-known name
    (``openid``, ``fhirUser``, ``profile``, ``offline_access``, ``online_access``), or ``None`` when
    the token is not valid SMART/OpenID syntax.
    """
    short = _strip_uri(token)
    if short in _SIMPLE:
        return short
    launch = _LAUNCH.match(short)
    if launch:
        return LaunchScope(raw=token, context=launch["context"], role=launch["role"])
    match = _RESOURCE.match(short)
    if not match:
        return None
    perm, query = match["perm"], match["query"]
    if perm in _V1_PERMISSIONS:
        if query is not None:
            return None  # query filters are a v2 feature
        letters, version = _V1_PERMISSIONS[perm], 1
    elif _V2_LETTERS.match(perm) and perm:
        letters, version = perm, 2
    else:
        return None
    filters: QueryFilter = ()
    if query is not None:
        try:
            filters = tuple(parse_qsl(query, keep_blank_values=False, strict_parsing=True))
        except ValueError:
            return None
        if not filters:
            return None
    return ResourceScope(
        raw=token,
        context=match["context"],  # type: ignore[arg-type]  # the regex admits only the three contexts
        resource_type=match["type"],
        interactions=frozenset(letters),  # type: ignore[arg-type]  # letters come from "cruds"
        filters=filters,
        version=version,  # type: ignore[arg-type]
    )


class ScopeSet:
    """An immutable set of scopes with the questions an app or a resource server asks of it.

    >>> granted = ScopeSet.parse("launch openid patient/Observation.rs user/*.read")
    >>> granted.allows("s", "Observation", "patient"), granted.allows("c", "Observation", "patient")
    (True, False)
    """

    __slots__ = ("_raw", "_parsed", "_unrecognized")

    def __init__(self, tokens: Iterable[str] = (), *, strict: bool = False) -> None:
        raw: list[str] = []
        parsed: list[Scope] = []
        unrecognized: list[str] = []
        for token in tokens:
            if not token or token in raw:
                continue
            raw.append(token)
            scope = parse_scope(token)
            if scope is None:
                if strict:
                    raise ScopeError(f"{token!r} is not a valid SMART scope")
                unrecognized.append(token)
            else:
                parsed.append(scope)
        self._raw: tuple[str, ...] = tuple(raw)
        self._parsed: tuple[Scope, ...] = tuple(parsed)
        self._unrecognized: tuple[str, ...] = tuple(unrecognized)

    @classmethod
    def parse(cls, text: str | Iterable[str] | None, *, strict: bool = False) -> ScopeSet:
        """Parse a space-separated scope string (or an iterable of tokens). ``None`` gives an empty set."""
        if text is None:
            return cls()
        tokens = text.split() if isinstance(text, str) else [t for part in text for t in part.split()]
        return cls(tokens, strict=strict)

    # -- the set itself -------------------------------------------------------------------------

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, token: object) -> bool:
        return token in self._raw or (isinstance(token, str) and _strip_uri(token) in self._names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScopeSet) and set(self._raw) == set(other._raw)

    def __hash__(self) -> int:
        return hash(frozenset(self._raw))

    def __str__(self) -> str:
        return " ".join(self._raw)

    def __repr__(self) -> str:
        return f"ScopeSet({str(self)!r})"

    def issubset(self, other: ScopeSet) -> bool:
        """Whether every token here was also in ``other`` (a refresh may only narrow, A-REF-2)."""
        return set(self._raw) <= set(other._raw)

    def covers(self, other: ScopeSet) -> bool:
        """Whether ``other`` asks for nothing beyond this set, permission by permission.

        ``patient/Goal.rs`` is covered by ``patient/Goal.cruds`` or ``patient/*.read``; a filtered scope
        is covered by the same filter or by an unfiltered grant; any other token must be present as is.
        Used for refresh, where "no new permissions can be obtained".
        """
        for token in other:
            scope = parse_scope(token)
            if isinstance(scope, ResourceScope):
                if not all(self._covers_letter(scope, letter) for letter in scope.interactions):
                    return False
            elif token not in self:
                return False
        return True

    def _covers_letter(self, scope: ResourceScope, letter: Interaction) -> bool:
        for mine in self.resource_scopes:
            if mine.context != scope.context or letter not in mine.interactions:
                continue
            if mine.resource_type not in ("*", scope.resource_type):
                continue
            if not mine.filters or mine.filters == scope.filters:
                return True
        return False

    def with_scopes(self, *tokens: str) -> ScopeSet:
        """A new set with ``tokens`` appended (those already present are not repeated)."""
        return ScopeSet([*self._raw, *tokens])

    @property
    def _names(self) -> frozenset[str]:
        return frozenset(s for s in self._parsed if isinstance(s, str))

    @property
    def resource_scopes(self) -> tuple[ResourceScope, ...]:
        return tuple(s for s in self._parsed if isinstance(s, ResourceScope))

    @property
    def launch_scopes(self) -> tuple[LaunchScope, ...]:
        return tuple(s for s in self._parsed if isinstance(s, LaunchScope))

    @property
    def unrecognized(self) -> tuple[str, ...]:
        """Tokens that are not SMART/OpenID syntax; they grant nothing."""
        return self._unrecognized

    # -- identity, refresh and launch ------------------------------------------------------------

    @property
    def openid(self) -> bool:
        return "openid" in self._names

    @property
    def fhir_user(self) -> bool:
        return "fhirUser" in self._names

    @property
    def offline_access(self) -> bool:
        return "offline_access" in self._names

    @property
    def online_access(self) -> bool:
        return "online_access" in self._names

    @property
    def ehr_launch(self) -> bool:
        """Whether the bare ``launch`` scope (EHR launch) is present."""
        return any(s.context is None for s in self.launch_scopes)

    @property
    def launch_contexts(self) -> frozenset[str]:
        """Requested standalone contexts: ``{"patient", "encounter", ...}`` from ``launch/<x>``."""
        return frozenset(s.context for s in self.launch_scopes if s.context is not None)

    # -- authorization questions -----------------------------------------------------------------

    def decide(
        self, interaction: Interaction | str, resource_type: str, context: Context | str
    ) -> ScopeDecision:
        """Whether ``interaction`` on ``resource_type`` is permitted in ``context``, and under which filters.

        ``interaction`` is one of ``c r u d s`` (see :func:`interaction_code` for FHIR names);
        ``context`` is ``patient`` (access to the in-context patient's data), ``user`` or ``system``.
        A scope of one context never grants another (``user/*.rs`` does not grant ``patient`` access).
        """
        if interaction not in _INTERACTIONS:
            raise ScopeError(f"interaction must be one of c, r, u, d, s; got {interaction!r}")
        if context not in _CONTEXTS:
            raise ScopeError(f"context must be patient, user or system; got {context!r}")
        filters: list[QueryFilter] = []
        for scope in self.resource_scopes:
            if scope.grants(interaction, resource_type, context):  # type: ignore[arg-type]
                if not scope.filters:
                    return ScopeDecision(allowed=True)
                if scope.filters not in filters:
                    filters.append(scope.filters)
        return ScopeDecision(allowed=bool(filters), filters=tuple(filters))

    def allows(self, interaction: Interaction | str, resource_type: str, context: Context | str) -> bool:
        """Whether the interaction is permitted *without restriction* (no query filter applies).

        A type covered only by filtered scopes answers ``False`` here; use :meth:`decide` or
        :meth:`query_filters` to serve such requests narrowed to the matching resources.
        """
        return self.decide(interaction, resource_type, context).unrestricted

    def query_filters(
        self, interaction: Interaction | str, resource_type: str, context: Context | str
    ) -> tuple[QueryFilter, ...]:
        """The filter sets that narrow the interaction (empty when unrestricted or denied)."""
        return self.decide(interaction, resource_type, context).filters

    def interactions(self, resource_type: str, context: Context | str) -> frozenset[Interaction]:
        """The letters permitted without restriction on ``resource_type`` in ``context``."""
        return frozenset(i for i in get_args(Interaction) if self.allows(i, resource_type, context))
