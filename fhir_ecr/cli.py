"""The ``mecr`` command.

Examples::

    mecr serve                      # apply migrations, serve on MECR_HOST:MECR_PORT (127.0.0.1:8000)
    mecr serve --port 9000          # … on port 9000; links and SMART URLs follow unless MECR_BASE_URL is set
    mecr db upgrade                 # apply migrations only
    mecr load examples/demo/*.json  # load FHIR resources or batch/transaction Bundles from files
    mecr demo                       # load the demo data, then serve
    mecr ehr add sandbox --iss http://127.0.0.1:8000/sandbox-ehr/fhir --client-id mecr   # docs/smart.md
    mecr client add sync-bot --jwks-file bot.jwks.json --scope 'system/*.rs'
    mecr billing export --from 2026-03-01 --to 2026-03-31 --format 837p -o march.x12   # docs/billing.md
    mecr import wearable --patient 123 export.zip                                       # docs/wearables.md
    mecr import directory examples/directory/            # an HSDS community directory   # docs/community.md
    mecr sync configure --ehr epic --pull 'Patient, Observation?category=laboratory'   # docs/sync.md
    mecr sync pull --ehr epic && mecr sync status                                       # EMR sync
    mecr worker                     # the job workers: scheduled pulls, outbox delivery, Bulk Data exports
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from . import __version__
from .config import Settings, get_settings
from .outcomes import FhirError

__all__ = ["main", "build_parser"]

# examples/demo, through the link fhir_ecr/_bundled/demo (a copy in an installed wheel)
EXAMPLES_DIR = (Path(__file__).parent / "_bundled" / "demo").resolve()
# the demo practice's billing file (docs/billing.md): examples/demo-billing.yaml, through the same kind of link
DEMO_BILLING = (Path(__file__).parent / "_bundled" / "demo-billing.yaml").resolve()


class CliError(Exception):
    """An error the command reports in one line and exits 2 for."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs test to check every command is documented)."""
    parser = argparse.ArgumentParser(
        prog="mecr",
        description="mECR, the mobile Electronic Coaching Record: a FHIR R4 coaching record for the EMR. "
        "Settings come from MECR_* environment variables (see docs/configuration.md).",
    )
    parser.add_argument("--version", action="version", version=f"mecr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="apply database migrations and serve the API",
        description="Apply migrations, then serve the FHIR API (and the OpenAPI page at /docs).",
    )
    serve.add_argument("--host", help="address to bind (default: MECR_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: MECR_PORT, 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (default 1); each starts its own process that validates large "
        "transactions beside their writes (MECR_VALIDATION_WORKERS, docs/configuration.md)",
    )
    serve.add_argument(
        "--with-worker",
        action="store_true",
        help="also run the job workers (EMR sync, Bulk Data exports, the refresh of kept coaching views) in "
        "this process, as `mecr worker` would (the embedded default: one process)",
    )

    db = sub.add_parser("db", help="database maintenance", description="Database maintenance.")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_sub.add_parser(
        "upgrade",
        help="apply all migrations (idempotent)",
        description="Apply all database migrations to MECR_DATABASE_URL.",
    )
    db_sub.add_parser(
        "current",
        help="print the database's migration revision",
        description="Print the migration revision of MECR_DATABASE_URL and the newest one.",
    )
    rebuild = db_sub.add_parser(
        "rebuild-derived",
        help="recompute the coaching views' derived tables from the stored Observations",
        description="Recompute the derived tables the coaching views read (derived_observation, "
        "derived_observation_code) from the stored Observations, in one transaction. Every write keeps them "
        "current; run this once after migration 0009 over a store that already held Observations (until then "
        "the views read the search index), or to repair one patient's rows.",
    )
    rebuild.add_argument(
        "--patient",
        metavar="ID",
        help="only this patient's Observations (default: all, which also marks the tables complete)",
    )

    load = sub.add_parser(
        "load",
        help="load FHIR JSON files (resources or batch/transaction Bundles)",
        description="Load FHIR R4 JSON files into the store. A batch or transaction Bundle is processed as "
        "such; a single resource with an id is written with update (PUT) semantics, one without is created. "
        "Each file is all-or-nothing.",
    )
    load.add_argument("files", nargs="+", type=Path, help="JSON files to load")
    load.add_argument("--quiet", action="store_true", help="no progress bar")

    demo = sub.add_parser(
        "demo",
        help="load the demo data and serve",
        description="Load the demo data in examples/demo (idempotent) into MECR_DATABASE_URL, then serve.",
    )
    demo.add_argument("--no-serve", action="store_true", help="load the demo data and exit")
    demo.add_argument("--host", help="address to bind (default: MECR_HOST, 127.0.0.1)")
    demo.add_argument("--port", type=int, help="port to listen on (default: MECR_PORT, 8000)")

    from .auth.cli import add_auth_parsers
    from .billing.cli import add_billing_parser

    add_billing_parser(sub)
    add_auth_parsers(sub)

    from .wearables.cli import add_import_parser  # `mecr import wearable` (docs/wearables.md)

    add_import_parser(sub)

    from .sync.cli import add_sync_parsers  # `mecr sync …`, `mecr worker` (docs/sync.md)

    add_sync_parsers(sub)

    from .referrals.cli import add_referrals_parser  # `mecr referrals …` (docs/referrals.md)

    add_referrals_parser(sub)
    return parser


def _serve(
    settings: Settings, host: str | None, port: int | None, workers: int = 1, with_worker: bool = False
) -> None:
    from .app import check_auth_mode
    from .composition import build_services
    from .store.db import make_engine, upgrade

    settings = settings.bound_to(host, port)  # a base_url that is not configured follows --host/--port
    check_auth_mode(settings)  # before anything else: MECR_AUTH=off only on a loopback bind
    engine = make_engine(settings.database_url)
    upgrade(engine)  # once, here, so that worker processes never race to migrate
    engine.dispose()
    where = settings.local_url
    print(
        f"mECR serving on {where}/"
        + ("" if settings.base_url == where else f" (public URL {settings.base_url}/)"),
        flush=True,
    )
    # mECR's own log lines (mecr.access, mecr.auth, …) go to stderr beside uvicorn's; none of them holds PHI.
    import logging

    logging.basicConfig(level=settings.log_level, format="%(levelname)s:     %(name)s %(message)s")
    # uvicorn's access log prints whole URLs, whose search parameters can hold PHI (names, identifiers):
    # mECR logs its own access lines without them (fhir_ecr.app.AccessLog).
    options = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "proxy_headers": True,
        "access_log": False,
    }
    consumer = None
    if with_worker:  # the job workers as threads of this process (jobs run with their own services)
        job_services = build_services(settings, migrate=False)
        consumer = job_services.jobs.consumer(embedded=True)
        consumer.start()
        print(f"mECR job workers: {consumer.workers} thread(s) in this process", flush=True)
    try:
        _run_uvicorn(settings, workers, options)
    finally:
        if consumer is not None:
            consumer.stop(graceful=True)


def _run_uvicorn(settings: Settings, workers: int, options: dict[str, Any]) -> None:
    import os

    import uvicorn

    from .composition import build_services
    from .server import serve_app

    if workers > 1:  # each worker process builds its own app from the MECR_* environment: pass the bind on
        os.environ["MECR_HOST"], os.environ["MECR_PORT"] = settings.host, str(settings.port)
        uvicorn.run("fhir_ecr.server:worker_app", factory=True, workers=workers, **options)
    else:
        uvicorn.run(serve_app(settings, services=build_services(settings, migrate=False)), **options)


def _load_demo_directory(settings: Settings) -> str:
    """Import the demo's community directory (examples/demo/directory, docs/community.md); idempotent."""
    from .app import build_services
    from .directory.importer import DirectoryImporter
    from .directory.sources import read_directory

    services = build_services(settings)
    try:
        read = read_directory(EXAMPLES_DIR / "directory", name="springfield-demo")
        summary = DirectoryImporter(services.repo).import_directory(read.directory, name=read.name)
    finally:
        services.engine.dispose()
    return ", ".join(f"{k}: {sum(getattr(summary, k).values())}" for k in ("created", "updated", "unchanged"))


def _load_files(
    settings: Settings,
    files: Sequence[Path],
    quiet: bool = False,
    transform: Callable[[Any], Any] | None = None,
) -> dict[str, int]:
    from tqdm import tqdm

    from .composition import build_services
    from .fhir.bundles import process_bundle
    from .store import jsonexact

    services = build_services(settings)
    counts = {"files": 0, "created": 0, "updated": 0, "unchanged": 0}
    try:
        for path in tqdm(files, desc="loading", unit="file", disable=quiet):
            try:
                data = jsonexact.loads(path.read_bytes())  # numbers kept exactly (1.50 stays 1.50)
            except OSError as exc:
                raise CliError(f"{path}: cannot read: {exc.strerror}") from None
            except orjson.JSONDecodeError as exc:
                raise CliError(f"{path}: not valid JSON: {exc}") from None
            if transform is not None:
                data = transform(data)
            try:
                if (
                    isinstance(data, dict)
                    and data.get("resourceType") == "Bundle"
                    and data.get("type") in ("batch", "transaction")
                ):
                    response = process_bundle(
                        services.repo,
                        data,
                        fhir_base=services.fhir_base,
                        max_entries=settings.max_bundle_entries,
                    )
                    for entry in response["entry"]:
                        status = entry["response"]["status"]
                        if status.startswith("201"):
                            counts["created"] += 1
                        elif "outcome" in entry["response"]:
                            counts["unchanged"] += 1
                        elif status.startswith("200"):
                            counts["updated"] += 1
                        else:
                            raise CliError(f"{path}: an entry failed: {status}")
                elif isinstance(data, dict) and isinstance(data.get("resourceType"), str):
                    if data.get("id"):
                        result = services.repo.update(data["resourceType"], data["id"], data)
                        key = "created" if result.created else ("updated" if result.changed else "unchanged")
                    else:
                        services.repo.create(data)
                        key = "created"
                    counts[key] += 1
                else:
                    raise CliError(f"{path}: not a FHIR resource")
            except FhirError as exc:
                raise CliError(f"{path}: {exc}") from None
            counts["files"] += 1
    finally:
        services.engine.dispose()
    return counts


def _demo_client(settings: Settings) -> None:
    """Register ``demo-reader`` (system/*.rs), so `mecr client token demo-reader` gives curl a token."""
    from smart_launch import ClientKeySet

    from .auth.registry import add_client
    from .composition import build_services

    services = build_services(settings)
    try:
        if services.auth_store.client("demo-reader") is None:
            add_client(
                services,
                client_id="demo-reader",
                scope="system/*.rs",
                name="Demo read-only client",
                jwks=ClientKeySet.generate(["ES384"]).public_jwks(),
            )
    finally:
        services.engine.dispose()


def _describe_error(exc: Exception) -> str:
    """One line for an unexpected error. A database error says only the first line of the driver's message:
    its DETAIL and CONTEXT lines can quote the values of a row (PHI)."""
    import sqlalchemy as sa

    if isinstance(exc, sa.exc.DBAPIError):
        first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
        return f"database error ({type(exc.orig).__name__}): {first}"
    return f"{type(exc).__name__}: {exc}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mecr`` console script."""
    args = build_parser().parse_args(argv)
    settings = get_settings()
    try:
        if args.command == "serve":
            _serve(settings, args.host, args.port, args.workers, args.with_worker)
        elif args.command == "db":
            from .store.db import current_revision, head_revision, make_engine, upgrade

            engine = make_engine(settings.database_url)
            if args.db_command == "upgrade":
                upgrade(engine)
                print(f"database at revision {current_revision(engine)}")
            elif args.db_command == "rebuild-derived":
                from .app import build_services
                from .coaching.derived import rebuild

                services = build_services(settings)
                done = rebuild(services.repo, args.patient)
                services.engine.dispose()
                print(
                    f"derived rows rebuilt for {done} Observations"
                    + (f" of Patient/{args.patient}" if args.patient else "")
                )
            else:
                print(f"current: {current_revision(engine) or '(empty)'}; newest: {head_revision()}")
            engine.dispose()
        elif args.command == "load":
            counts = _load_files(settings, args.files, args.quiet)
            print(", ".join(f"{k}: {v}" for k, v in counts.items()))
        elif args.command == "demo":
            from .app import check_auth_mode

            # The demo serves the sandbox EHR, and every link it prints names the port it really serves; its
            # billing operations use the demo practice's billing file unless MECR_BILLING_RULES names another.
            settings = settings.bound_to(args.host, args.port).model_copy(
                update={"sandbox_ehr": True, "billing_rules": settings.billing_rules or str(DEMO_BILLING)}
            )
            if not args.no_serve:
                check_auth_mode(settings)
            files = sorted(EXAMPLES_DIR.glob("*.json"))
            if not files:
                raise CliError(f"no demo data in {EXAMPLES_DIR}")
            from .coaching.demo import demo_today, rebase_demo_bundle

            # The coaching demo is stamped with the day it was generated: move it to today (docs/coaching.md).
            today = demo_today()
            counts = _load_files(settings, files, transform=lambda data: rebase_demo_bundle(data, today))
            print("demo data: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
            print("demo directory: " + _load_demo_directory(settings))
            print(
                f"billing: mecr billing export --rules {settings.billing_rules} --from "
                f"{today - timedelta(days=60)} --to {today} --format 837p -o demo.x12"
            )
            _demo_client(settings)
            if not args.no_serve:
                base = settings.base_url
                print(
                    f"mECR demo: {base}/ (launch from the sandbox EHR at {base}/sandbox-ehr/); API token for "
                    "curl: `mecr client token demo-reader`",
                    flush=True,
                )
                _serve(settings, None, None, with_worker=True)  # the jobs too: sync, exports, kept views
        elif args.command in ("ehr", "client"):
            from .auth.cli import run_auth

            return run_auth(args, settings)
        elif args.command == "billing":
            from .billing.cli import run_billing

            return run_billing(args, settings)
        elif args.command == "import" and args.import_command == "directory":
            from .directory.cli import run_directory_import

            return run_directory_import(args, settings)
        elif args.command == "import":
            from .wearables.cli import run_import

            return run_import(args, settings)
        elif args.command == "sync":
            from .sync.cli import run_sync

            return run_sync(args, settings)
        elif args.command == "referrals":
            from .referrals.cli import run_referrals

            return run_referrals(args, settings)
        elif args.command == "worker":
            from .sync.cli import run_worker

            return run_worker(args, settings)
    except CliError as exc:
        print(f"mecr: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a database that cannot be reached, a port in use, …
        print(f"mecr: error: {_describe_error(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
