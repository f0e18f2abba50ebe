"""``mecr ehr …`` and ``mecr client …``: the EHR registry and the API-client registry."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from smart_launch import ScopeSet

from .principal import Principal
from .registry import (
    AUTH_METHODS,
    RegistryError,
    add_client,
    add_client_with_new_key,
    add_ehr,
    default_key_file,
)

__all__ = ["add_auth_parsers", "run_auth"]


def add_auth_parsers(sub: Any) -> None:
    ehr = sub.add_parser(
        "ehr",
        help="the EHRs allowed to launch mECR (SMART App Launch)",
        description="Manage the EHR registry: which EHRs (FHIR base URL = iss) may launch mECR, with mECR's "
        "client id there and how mECR authenticates at their token endpoint. A launch from an unregistered iss "
        "is refused. See docs/smart.md.",
    )
    ehr_sub = ehr.add_subparsers(dest="ehr_command", metavar="ACTION", required=True)
    add = ehr_sub.add_parser("add", help="register an EHR", description="Register an EHR.")
    add.add_argument("id", help="short name, e.g. epic-prod (used in /smart/login?ehr=ID)")
    add.add_argument(
        "--iss", required=True, help="the EHR's FHIR base URL, exactly as it sends it in a launch"
    )
    add.add_argument("--client-id", required=True, help="mECR's client id at that EHR")
    add.add_argument(
        "--auth",
        choices=AUTH_METHODS,
        default="none",
        help="client authentication at the EHR's token endpoint: none (public client), "
        "client_secret_basic, or private_key_jwt with mECR's keys from /.well-known/jwks.json "
        "(default: none)",
    )
    add.add_argument(
        "--secret-file",
        type=Path,
        help="file holding the client secret (client_secret_basic); stored encrypted with MECR_SECRET_KEY",
    )
    add.add_argument("--launch-scope", help="scopes for a coach's EHR launch (default: MECR_LAUNCH_SCOPE)")
    add.add_argument(
        "--patient-scope", help="scopes for a patient's standalone launch (default: MECR_PATIENT_SCOPE)"
    )
    add.add_argument("--name", help="display name (default: the id)")
    add.add_argument("--replace", action="store_true", help="update the registration if the id exists")
    ehr_sub.add_parser("list", help="list registered EHRs", description="List registered EHRs (no secrets).")
    rm = ehr_sub.add_parser("remove", help="remove an EHR", description="Remove an EHR registration.")
    rm.add_argument("id")
    conf = ehr_sub.add_parser(
        "conflicts",
        help="identity conflicts launches ran into",
        description="List the launches mECR refused because the EHR's Patient or Practitioner matched more than "
        "one mECR record (the same MRN or EHR link on two records) or a record with another birth date. Resolve "
        "one by correcting the records (e.g. merge or remove the wrong identifier), then clear it with --clear.",
    )
    conf.add_argument("--clear", metavar="KEY", help="forget a resolved conflict (its KEY from the list)")

    client = sub.add_parser(
        "client",
        help="backend-services clients of mECR's own API",
        description="Manage system clients: programs that call mECR's FHIR API with SMART Backend Services "
        "(client_credentials + a private_key_jwt assertion at /auth/token) and system/ scopes.",
    )
    c_sub = client.add_subparsers(dest="client_command", metavar="ACTION", required=True)
    cadd = c_sub.add_parser(
        "add", help="register a client", description="Register a backend-services client."
    )
    cadd.add_argument("client_id")
    keys = cadd.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks-url", help="URL of the client's public JWKS (https)")
    keys.add_argument("--jwks-file", type=Path, help="file with the client's public JWKS")
    keys.add_argument(
        "--generate-key",
        action="store_true",
        help="make a new key pair: write the private JWK set to --key-file (mode 0600, never "
        "overwritten) and register its public half",
    )
    cadd.add_argument(
        "--key-file",
        type=Path,
        help="with --generate-key: where to write the private key (default: ./CLIENT_ID.private-jwks.json)",
    )
    cadd.add_argument(
        "--scope", required=True, help="allowed system scopes, e.g. 'system/*.rs' or 'system/*.cruds'"
    )
    cadd.add_argument("--name", help="display name (default: the client id)")
    cadd.add_argument(
        "--organization",
        metavar="ORG_ID",
        help="bind the client to a community organisation (its Organization id): it then sees and "
        "updates only the referral Tasks that organisation owns, with what the patient's consent "
        "covers (docs/referrals.md); give it e.g. --scope 'system/Task.rus system/ServiceRequest.r "
        "system/Patient.r system/Procedure.c'",
    )
    c_sub.add_parser("list", help="list clients", description="List registered clients.")
    ctok = c_sub.add_parser(
        "token",
        help="print an access token for a registered client (operator shortcut)",
        description="Issue an access token for a registered client directly, without the client-assertion "
        "round trip (the operator already has the database). For curl and scripts; the scope cannot exceed "
        "the client's registration.",
    )
    ctok.add_argument("client_id")
    ctok.add_argument("--scope", help="scopes to grant (default: everything registered)")
    ctok.add_argument(
        "--ttl", type=int, default=3600, help="lifetime in seconds (default 3600, at most 86400)"
    )
    crm = c_sub.add_parser(
        "remove",
        help="remove a client (and revoke its tokens)",
        description="Remove a client and revoke its tokens.",
    )
    crm.add_argument("client_id")


def run_auth(args: argparse.Namespace, settings: Any) -> int:
    from ..composition import build_services

    services = build_services(settings)
    try:
        if args.command == "ehr":
            return _ehr(args, services)
        return _client(args, services)
    except RegistryError as exc:
        print(f"mecr: error: {exc}", file=sys.stderr)
        return 2
    finally:
        services.engine.dispose()


def _ehr(args: argparse.Namespace, services: Any) -> int:
    store = services.auth_store
    if args.ehr_command == "add":
        secret = None
        if args.secret_file is not None:
            try:
                secret = args.secret_file.read_text().strip()
            except OSError as exc:
                raise RegistryError(f"{args.secret_file}: {exc.strerror}") from None
        rec = add_ehr(
            services,
            ehr_id=args.id,
            iss=args.iss,
            client_id=args.client_id,
            auth_method=args.auth,
            secret=secret,
            launch_scope=args.launch_scope,
            patient_scope=args.patient_scope,
            name=args.name,
            replace=args.replace,
        )
        print(f"registered EHR {rec.id}: iss {rec.iss}, client {rec.client_id} ({rec.auth_method})")
        print(f"  redirect URI to register at the EHR: {services.settings.base_url}/smart/callback")
        print(f"  launch URL to register at the EHR:   {services.settings.base_url}/smart/launch")
        if rec.auth_method == "private_key_jwt":
            print(
                f"  JWKS URL to register at the EHR:     {services.settings.base_url}/.well-known/jwks.json"
            )
        return 0
    if args.ehr_command == "list":
        rows = store.ehrs()
        if not rows:
            print("no EHRs registered (mecr ehr add --help)")
        for r in rows:
            print(f"{r['id']}\t{r['iss']}\tclient={r['client_id']}\tauth={r['auth_method']}\t{r['name']}")
        return 0
    if args.ehr_command == "conflicts":
        return _conflicts(args, services)
    if not store.remove_ehr(args.id):
        raise RegistryError(f"no EHR with id {args.id!r}")
    print(f"removed EHR {args.id}")
    return 0


def _conflicts(args: argparse.Namespace, services: Any) -> int:
    from .linking import clear_link_conflict, link_conflicts

    if args.clear:
        if not clear_link_conflict(services.repo, args.clear):
            raise RegistryError(f"no conflict {args.clear!r} (mecr ehr conflicts lists them)")
        print(f"cleared {args.clear}")
        return 0
    rows = link_conflicts(services.repo)
    if not rows:
        print("no identity conflicts")
    for r in rows:
        seen = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["lastSeen"]))
        print(
            f"{r['key']}\t{r['reason']}\tmECR records: {', '.join(r['candidates'])}\t"
            f"{r['count']}x, last {seen} UTC"
        )
    return 0


def _client(args: argparse.Namespace, services: Any) -> int:
    store = services.auth_store
    if args.client_command == "add" and args.generate_key:
        key_file = (args.key_file or default_key_file(args.client_id)).absolute()
        row = add_client_with_new_key(
            services,
            client_id=args.client_id,
            scope=args.scope,
            key_file=key_file,
            name=args.name,
            organization=args.organization,
        )
        print(f"registered client {row['client_id']} with scope {row['scope']}")
        print(f"  private key (keep it secret; mECR has only the public half): {key_file}")
        print(f"  token endpoint: {services.settings.base_url}/auth/token (private_key_jwt, RS384 or ES384)")
        print(f"  a token for curl, now: mecr client token {row['client_id']}")
        return 0
    if args.client_command == "add":
        if args.key_file is not None:
            raise RegistryError("--key-file goes with --generate-key")
        jwks = None
        if args.jwks_file is not None:
            try:
                jwks = json.loads(args.jwks_file.read_text())
            except OSError as exc:
                raise RegistryError(f"{args.jwks_file}: {exc.strerror}") from None
            except ValueError:
                raise RegistryError(f"{args.jwks_file}: not JSON") from None
        row = add_client(
            services,
            client_id=args.client_id,
            scope=args.scope,
            jwks_url=args.jwks_url,
            jwks=jwks,
            name=args.name,
            organization=args.organization,
        )
        print(f"registered client {row['client_id']} with scope {row['scope']}")
        print(f"  token endpoint: {services.settings.base_url}/auth/token (private_key_jwt, RS384 or ES384)")
        return 0
    if args.client_command == "token":
        row = store.client(args.client_id)
        if row is None:
            raise RegistryError(f"no client {args.client_id!r}")
        if not 0 < args.ttl <= 86400:
            raise RegistryError("--ttl must be 1-86400 seconds")
        registered = ScopeSet.parse(row["scope"])
        scope = ScopeSet.parse(args.scope) if args.scope else registered
        if not registered.covers(scope):
            raise RegistryError(f"{args.scope!r} exceeds the client's registered scope {row['scope']!r}")
        principal = Principal(
            kind="system",
            subject=f"client:{row['client_id']}",
            scopes=scope,
            client_id=row["client_id"],
            display=row["name"],
            organization=row.get("organization") or None,
        )
        sessions = services.sessions
        ttl, sessions.token_ttl = sessions.token_ttl, args.ttl
        try:
            token, _ = sessions.issue_token(principal)
        finally:
            sessions.token_ttl = ttl
        print(token)
        return 0
    if args.client_command == "list":
        rows = store.clients()
        if not rows:
            print("no clients registered (mecr client add --help)")
        for r in rows:
            keys = r["jwks_url"] or "inline JWKS"
            org = f"\torganization={r['organization']}" if r.get("organization") else ""
            print(f"{r['client_id']}\tscope={r['scope']}\tkeys={keys}\t{r['name']}{org}")
        return 0
    if not store.remove_client(args.client_id):
        raise RegistryError(f"no client {args.client_id!r}")
    print(f"removed client {args.client_id} and revoked its tokens")
    return 0
