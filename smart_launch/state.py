"""Pending authorizations, keyed by ``state``, in storage the caller provides.

app-launch.md: apps "SHALL generate an unpredictable state parameter for each user session", with
"a minimum of 122 bits of entropy", and "SHALL ensure that the state value is securely tied to the
user's current session". We draw 256 bits from ``secrets``, store the pending authorization (with the
PKCE verifier, which never leaves the server) under it, bind it to the caller's browser-session id, and
let it be consumed once, before it expires.

Storage is the small :class:`StateStore` protocol (async ``put`` / ``pop`` of JSON text);
:class:`InMemoryStateStore` serves tests and single-process development. A production store (a
database table, Redis ``GETDEL``) must make ``pop`` atomic so one state cannot be consumed twice.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import (
    ConfigurationError,
    ExpiredStateError,
    ReplayedStateError,
    SessionMismatchError,
    UnknownStateError,
)

__all__ = [
    "STATE_BYTES",
    "InMemoryStateStore",
    "PendingAuthorization",
    "StateStore",
    "consume_state",
    "new_state",
    "save_pending",
]

#: 32 bytes = 256 bits, comfortably above the 122 bits app-launch.md requires.
STATE_BYTES = 32
#: How long a consumed or expired state is remembered, so a replay is told apart from a stranger.
TOMBSTONE_SECONDS = 3600.0


class StateStore(Protocol):
    """Where pending authorizations wait for the redirect.

    ``put`` stores ``value`` under ``key`` and may forget it after ``expires_at`` (epoch seconds);
    ``pop`` removes and returns it (``None`` if absent), atomically.
    """

    async def put(self, key: str, value: str, expires_at: float) -> None: ...

    async def pop(self, key: str) -> str | None: ...


class InMemoryStateStore:
    """A :class:`StateStore` in a dict, for tests and one-process development servers."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._items: dict[str, tuple[str, float]] = {}

    async def put(self, key: str, value: str, expires_at: float) -> None:
        now = self._clock()
        # Forget what has outlived its storage lifetime, so the dict cannot grow without bound.
        for stale in [k for k, (_, until) in self._items.items() if until <= now]:
            del self._items[stale]
        self._items[key] = (value, expires_at)

    async def pop(self, key: str) -> str | None:
        item = self._items.pop(key, None)
        if item is None or item[1] <= self._clock():
            return None
        return item[0]

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True)
class PendingAuthorization:
    """Everything the callback needs, stored server-side under ``state``."""

    state: str = field(repr=False)
    session_id: str = field(repr=False)
    iss: str
    client_id: str
    redirect_uri: str
    code_verifier: str = field(repr=False)
    scope: str
    created_at: float
    expires_at: float
    launch: str | None = None
    nonce: str | None = field(default=None, repr=False)
    configuration: Mapping[str, Any] = field(default_factory=dict, repr=False)
    consumed: bool = False

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PendingAuthorization:
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def new_state() -> str:
    """A fresh ``state`` value: 256 random bits, base64url."""
    return secrets.token_urlsafe(STATE_BYTES)


async def save_pending(store: StateStore, pending: PendingAuthorization) -> None:
    """Store ``pending`` under its state; kept past expiry so late or replayed use gets a precise error."""
    if not pending.session_id:
        raise ConfigurationError("a state must be bound to a browser-session id")
    await store.put(pending.state, pending.to_json(), pending.expires_at + TOMBSTONE_SECONDS)


async def consume_state(
    store: StateStore, state: str | None, *, session_id: str, now: float
) -> PendingAuthorization:
    """Take the pending authorization for ``state``, once, for this session, before it expires.

    The state is spent by any attempt to use it -- also one from the wrong session or after expiry --
    and a tombstone is left so that a second use reports :class:`ReplayedStateError`.
    """
    if not state:
        raise UnknownStateError("the redirect carried no 'state'")
    text = await store.pop(state)
    if text is None:
        raise UnknownStateError("unknown 'state': not issued by this app, or long expired")
    try:
        pending = PendingAuthorization.from_json(text)
    except (ValueError, TypeError) as exc:
        raise UnknownStateError("the stored authorization for this 'state' is unreadable") from exc
    tombstone = dataclasses.replace(pending, consumed=True)
    await store.put(state, tombstone.to_json(), pending.expires_at + TOMBSTONE_SECONDS)
    if pending.consumed:
        raise ReplayedStateError("this 'state' was already used; authorization responses are single use")
    if not hmac.compare_digest(pending.session_id.encode(), session_id.encode()):
        raise SessionMismatchError("this 'state' was issued to a different browser session")
    if now >= pending.expires_at:
        raise ExpiredStateError("the authorization request expired before the redirect came back")
    return pending
