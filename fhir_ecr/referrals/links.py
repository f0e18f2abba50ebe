"""The organisation's link to one referral, for the many community organisations without a FHIR system.

A link is ``{base_url}/r/{token}``: the token is 32 random bytes (``secrets.token_urlsafe``), stored only as its
SHA-256 hash (``AuthStore`` credentials, kind ``referral-link``) with the referral's Task and organisation; it
works for ``MECR_REFERRAL_LINK_DAYS`` (default 14) days, for that one referral, until the coach revokes it (a new
link revokes the old one). Whoever holds it acts as the organisation the Task is owned by — a
:class:`~fhir_ecr.auth.Principal` bound to that Organization with the few scopes the page needs — so the guard
shows the page only what the patient's consent covers and the write hook enforces the workflow; each use is
audited like any other access. An expired, revoked or unknown link finds nothing and changes nothing.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from smart_launch import ScopeSet

from ..auth import Principal

__all__ = [
    "KIND",
    "LINK_SCOPES",
    "Link",
    "issue_link",
    "link_principal",
    "message_text",
    "resolve_link",
    "revoke_links",
    "live_links",
]

KIND = "referral-link"
#: What the holder of a link may do: read the referral, its patient (minimum necessary) and update the Task,
#: record the Procedure it performed.
LINK_SCOPES = (
    "system/Task.rus system/ServiceRequest.rs system/Patient.r system/Procedure.crs system/Organization.rs"
)


@dataclass(frozen=True)
class Link:
    """A live link's record (never the token itself)."""

    task_id: str
    organization: str
    created: int
    expires: int
    issued_by: str


def issue_link(
    services: Any, task_id: str, organization: str, issued_by: str, days: int | None = None
) -> str:
    """A new link token for ``Task/{task_id}`` owned by ``Organization/{organization}`` (older links of that
    referral are revoked: one live link per referral)."""
    revoke_links(services, task_id)
    token = secrets.token_urlsafe(32)
    ttl = 86400 * (days or services.settings.referral_link_days)
    data = json.dumps({"task": task_id, "organization": organization, "issued_by": issued_by})
    services.auth_store.put_credential(token, KIND, data, int(time.time()) + ttl)
    return token


def resolve_link(services: Any, token: str) -> Link | None:
    """The live link for ``token`` (None: unknown, expired or revoked)."""
    if not token or len(token) > 128:
        return None
    row = services.auth_store.credential(token, KIND)
    if row is None:
        return None
    data = json.loads(row.data)
    return Link(
        str(data["task"]),
        str(data["organization"]),
        int(row.created),
        int(row.expires),
        str(data.get("issued_by") or ""),
    )


def live_links(services: Any, task_id: str) -> list[Link]:
    """The referral's live links (at most one)."""
    out = []
    for row in services.auth_store.live_credentials(KIND, json.dumps({"task": task_id})[1:-1]):
        data = json.loads(row.data)
        out.append(
            Link(
                str(data["task"]),
                str(data["organization"]),
                int(row.created),
                int(row.expires),
                str(data.get("issued_by") or ""),
            )
        )
    return out


def revoke_links(services: Any, task_id: str) -> int:
    """Revoke every link of ``Task/{task_id}``; how many there were."""
    return int(services.auth_store.delete_credentials(KIND, json.dumps({"task": task_id})[1:-1]))


def link_principal(link: Link) -> Principal:
    """Who a link's holder is: the organisation, confined to its referrals (docs/referrals.md)."""
    return Principal(
        kind="system",
        subject=f"referral-link:{link.task_id}",
        scopes=ScopeSet.parse(LINK_SCOPES),
        display=f"Referral link (Organization/{link.organization})",
        organization=link.organization,
    )


def message_text(url: str, org_name: str, practice: str, need: str, expires: str) -> dict[str, str]:
    """What the coach copies into an email or a text message: no PHI in it, only the link."""
    email = (
        f"Hello {org_name},\n\n{practice} has referred someone to you for: {need}.\n"
        f"The person agreed that we share their name, contact details and what they need with you.\n\n"
        f"Open the referral to accept or decline it, and to tell us when it is done:\n{url}\n\n"
        f"The link works until {expires} and only for this referral. Please do not forward it.\n"
    )
    sms = f"{practice}: a new referral for {org_name}. Open to accept or decline (until {expires}): {url}"
    return {"email": email, "sms": sms}
