"""``mecr sync configure|pull|push|status|retry`` and ``mecr worker`` (docs/sync.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

__all__ = ["add_sync_parsers", "run_sync", "run_worker"]


def add_sync_parsers(sub: Any) -> None:
    sync = sub.add_parser(
        "sync",
        help="EMR sync: configure, pull, push, status, retry",
        description="Sync with the registered EMRs (mecr ehr add): pull the chart in (paged incremental searches or "
        "FHIR Bulk Data), push coaching records back through the outbox. pull and push run in the foreground "
        "unless --background hands them to `mecr worker`. See docs/sync.md.",
    )
    s = sync.add_subparsers(dest="sync_command", metavar="ACTION", required=True)
    conf = s.add_parser(
        "configure",
        help="set what to pull from and push to an EMR",
        description="Set up sync for a registered EMR. mECR signs in at the EMR's token endpoint with "
        "SMART Backend Services (client_credentials, private_key_jwt with mECR's keys from "
        "/.well-known/jwks.json): register that URL and the client id at the EMR.",
    )
    conf.add_argument("--ehr", required=True, help="the EHR's registry id (mecr ehr list)")
    conf.add_argument(
        "--pull",
        help="types to pull, each with optional search parameters, e.g. 'Patient, "
        "Observation?category=vital-signs,laboratory' (default: Patient, Condition, Observation "
        "(vital signs and labs), Coverage, Goal, CarePlan, Encounter)",
    )
    conf.add_argument(
        "--push",
        help="types to push, with optional token filters, e.g. 'Goal, CarePlan, "
        "Observation?code=http://loinc.org|41950-7' (default: Goal, CarePlan, Encounter, "
        "DocumentReference); '' pushes nothing",
    )
    conf.add_argument(
        "--mode",
        choices=("paged", "bulk"),
        default="paged",
        help="paged: incremental searches by _lastUpdated; bulk: FHIR Bulk Data $export (default paged)",
    )
    conf.add_argument("--bulk-level", default="system", help="with --mode bulk: system, patient or group/ID")
    conf.add_argument(
        "--interval",
        type=int,
        default=15,
        help="minutes between scheduled pulls; 0: only `mecr sync pull` (default 15)",
    )
    conf.add_argument(
        "--client-id", help="mECR's backend-services client id at the EMR (default: its launch client id)"
    )
    conf.add_argument(
        "--scope",
        help="scopes to ask the EMR for (default: system/T.rs for pulled types, "
        "system/T.crus for pushed ones)",
    )
    conf.add_argument(
        "--no-batch", action="store_true", help="push one request per resource, not batch Bundles"
    )
    conf.add_argument(
        "--disable", action="store_true", help="keep the configuration but pull and push nothing"
    )
    conf.add_argument("--remove", action="store_true", help="remove the EMR's sync configuration")
    for name, text in (
        ("pull", "pull now: what changed since the last pull (or everything with --full)"),
        ("push", "push now: deliver the outbox rows that are due"),
    ):
        p = s.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("--ehr", help="one EMR (default: every EMR with sync configured)")
        p.add_argument(
            "--background", action="store_true", help="enqueue the job for `mecr worker` and return"
        )
        if name == "pull":
            p.add_argument("--full", action="store_true", help="ignore the high-water marks: pull everything")
    st = s.add_parser(
        "status",
        help="last pulls, lag, outbox depth, parked pushes",
        description="Per EMR: the last pull of each type and how far behind it is, the outbox depth and "
        "the parked pushes (with their numbers, for mecr sync retry).",
    )
    st.add_argument("--ehr", help="one EMR")
    st.add_argument("--json", action="store_true", help="print JSON")
    rt = s.add_parser(
        "retry",
        help="push parked rows again",
        description="Queue parked outbox rows again (a parked 412 conflict then overwrites the EMR's "
        "copy with mECR's).",
    )
    rt.add_argument("rows", nargs="*", type=int, help="row numbers (mecr sync status); none: all parked rows")
    rt.add_argument("--ehr", help="only this EMR's parked rows")

    worker = sub.add_parser(
        "worker",
        help="run the job workers (pulls, pushes, exports)",
        description="Run the job runner's workers (huey) on MECR_JOB_STORE until interrupted: scheduled pulls, "
        "outbox delivery and Bulk Data exports. Several workers (processes or machines) may share a PostgreSQL "
        "or Redis queue.",
    )
    worker.add_argument("--threads", type=int, help="worker threads (default: MECR_WORKER_THREADS, 2)")
    worker.add_argument(
        "--no-schedule", action="store_true", help="do not run the minute's scheduled jobs here"
    )


def _targets(services: Any, ehr: str | None) -> list[str]:
    if ehr:
        services.sync.ehr(ehr)  # SyncSetupError when unknown
        return [ehr]
    return [row["id"] for row, config in services.sync.configured() if config.enabled]


def run_sync(args: argparse.Namespace, settings: Any) -> int:
    from ..composition import build_services
    from .client import EmrError
    from .config import ConfigError
    from .service import SyncSetupError

    services = build_services(settings)
    try:
        return _run(args, services)
    except (SyncSetupError, ConfigError) as exc:
        print(f"mecr: error: {exc}", file=sys.stderr)
        return 2
    except EmrError as exc:
        print(f"mecr: error: {exc}", file=sys.stderr)
        return 1
    finally:
        services.sync.close()
        services.jobs.close()
        services.engine.dispose()


def _run(args: argparse.Namespace, services: Any) -> int:
    from huey.exceptions import RetryTask

    from . import tasks
    from .client import EmrUnavailable
    from .config import SyncConfig
    from .status import sync_status

    command = args.sync_command
    if command == "configure":
        row = services.auth_store.ehr(args.ehr)
        if row is None:
            from .service import SyncSetupError

            raise SyncSetupError(f"no EHR {args.ehr!r} is registered (mecr ehr add)")
        if args.remove:
            services.auth_store.update_ehr(args.ehr, sync_config=None)
            print(f"sync with {args.ehr} removed")
            return 0
        config = SyncConfig.build(
            pull=args.pull,
            push=args.push,
            mode=args.mode,
            bulk_level=args.bulk_level,
            interval_minutes=args.interval,
            scope=args.scope,
            batch=not args.no_batch,
            enabled=not args.disable,
        )
        values: dict[str, Any] = {"sync_config": config.to_json()}
        if args.client_id:
            values["backend_client_id"] = args.client_id
        services.auth_store.update_ehr(args.ehr, **values)
        print(
            f"sync with {args.ehr}: pull {', '.join(str(s) for s in config.pull) or 'nothing'}; push "
            f"{', '.join(str(s) for s in config.push) or 'nothing'}; {config.mode}"
            f"{'' if not config.interval_minutes else f', every {config.interval_minutes} min'}"
        )
        print(
            f"  at the EMR, register mECR as a backend-services client: client id "
            f"{args.client_id or row.get('backend_client_id') or row['client_id']}, JWKS URL "
            f"{services.settings.base_url}/.well-known/jwks.json, scopes {config.token_scope()}"
        )
        return 0
    if command == "status":
        found = sync_status(services, args.ehr)
        if args.json:
            print(json.dumps(found, indent=1))
            return 0
        if not found:
            print("no EMR has sync configured (mecr sync configure --help)")
        for e in found:
            print(f"{e['ehr']} ({e['mode']}{', paused' if not e['enabled'] else ''})")
            for t in e["types"]:
                lag = f"{t['lag_seconds']} s behind" if t["lag_seconds"] is not None else "never pulled"
                print(
                    f"  pull {t['type']}: up to {t['high_water'] or '-'} ({lag}); last {t['last_count'] or 0} "
                    f"resources{'; ' + t['last_error'] if t['last_error'] else ''}"
                )
            o = e["outbox"]
            print(
                f"  push: {o['pending'] + o['claimed']} waiting, {o['done']} delivered, {o['skipped']} not pushed, "
                f"{o['parked']} parked"
            )
            for p in e["parked"]:
                print(f"    #{p['id']} {p['resource']}: {p['status'] or '-'} {p['detail']}")
        return 0
    if command == "retry":
        n = services.sync_store.retry(args.rows or None, args.ehr)
        for ehr_id in services.sync_store.due_ehrs():
            services.jobs.enqueue("deliver", ehr_id)
        print(f"{n} parked row{'s' if n != 1 else ''} queued again")
        return 0
    status = 0
    for ehr_id in _targets(services, args.ehr):
        if args.background:
            if command == "pull":
                services.jobs.enqueue("pull", ehr_id, *([True] if args.full else []))
            else:
                services.jobs.enqueue("deliver", ehr_id)
            print(f"{command} of {ehr_id} queued for mecr worker")
            continue
        started = time.monotonic()
        try:
            if command == "pull":
                counts = tasks.pull_now(services, ehr_id, args.full)
                line = counts.line() if counts is not None else "skipped: another worker is pulling it"
            else:
                line = tasks.deliver_now(services, ehr_id).line()
        except (EmrUnavailable, RetryTask) as exc:
            print(
                f"{command} {ehr_id}: the EMR is unavailable ({type(exc).__name__}); try again later",
                file=sys.stderr,
            )
            status = 1
            continue
        print(f"{command} {ehr_id}: {line} ({time.monotonic() - started:.1f} s)")
    return status


def run_worker(args: argparse.Namespace, settings: Any) -> int:
    """``mecr worker``: the consumer in the foreground, until SIGINT/SIGTERM."""
    import logging

    from ..composition import build_services

    logging.basicConfig(level=settings.log_level, format="%(levelname)s:     %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(
        logging.WARNING
    )  # its INFO lines carry EMR URLs with search parameters
    from ..heap import settle

    services = build_services(settings)
    settle()  # a long-running process: its loaded objects out of the collector's way (fhir_ecr/heap.py)
    try:
        consumer = services.jobs.consumer(args.threads, periodic=not args.no_schedule)
        print(
            f"mecr worker: {consumer.workers} thread(s) on {services.jobs.url.split('://', 1)[0]}", flush=True
        )
        consumer.run()
    finally:
        services.jobs.close()
        services.engine.dispose()
    return 0
