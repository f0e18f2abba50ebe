"""``mecr referrals export|import|link``: referral status as CSV, and the organisation's link (docs/referrals.md)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["add_referrals_parser", "run_referrals"]


def add_referrals_parser(sub: Any) -> None:
    ref = sub.add_parser(
        "referrals",
        help="community referrals: CSV status exchange, organisation links",
        description="Community referrals (docs/referrals.md): export and import their status as CSV for platforms "
        "that exchange spreadsheets, and make or revoke an organisation's link to one referral.",
    )
    r_sub = ref.add_subparsers(dest="referrals_command", metavar="ACTION", required=True)
    exp = r_sub.add_parser(
        "export",
        help="write referral status as CSV",
        description="Write one CSV row per referral Task: ids, need, status, reason, last "
        "change, latest note, what was provided. No names or chart data.",
    )
    exp.add_argument("--organization", metavar="ORG_ID", help="only the referrals this Organization owns")
    exp.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    imp = r_sub.add_parser(
        "import",
        help="apply a CSV of referral status as an organisation",
        description="Apply each row (task_id, status, status_reason, note, provided) as the "
        "organisation: only its own referrals, only the steps the workflow allows it (accepted, "
        "rejected with a reason, in-progress, completed with what was provided). Prints one "
        "line per row: changed, unchanged or refused (why). Exit status 1 when a row was refused.",
    )
    imp.add_argument("file", type=Path, help="the CSV file")
    imp.add_argument(
        "--organization", metavar="ORG_ID", required=True, help="the Organization the rows come from"
    )
    link = r_sub.add_parser(
        "link",
        help="make (or revoke) an organisation's link to one referral",
        description="Print a new link to the referral Task for its owner organisation (older "
        "links of that referral stop working), or revoke its links.",
    )
    link.add_argument("task_id")
    link.add_argument("--days", type=int, help="days the link works (default MECR_REFERRAL_LINK_DAYS)")
    link.add_argument("--revoke", action="store_true", help="revoke the referral's links instead")


def run_referrals(args: argparse.Namespace, settings: Any) -> int:
    from ..app import build_services
    from ..auth import Access
    from ..cli import CliError

    services = build_services(settings)
    try:
        if args.referrals_command == "export":
            from .csvio import export_rows, write_csv

            rows = export_rows(services.repo, args.organization)
            if args.output:
                with args.output.open("w", newline="", encoding="utf-8") as f:
                    n = write_csv(rows, f)
                print(f"wrote {n} referrals to {args.output}", file=sys.stderr)
            else:
                write_csv(rows, sys.stdout)
            return 0
        if args.referrals_command == "import":
            from .csvio import import_rows
            from .links import Link, link_principal

            try:
                text = args.file.read_text(encoding="utf-8-sig")
            except OSError as exc:
                raise CliError(f"{args.file}: {exc.strerror}") from None
            who = link_principal(Link("csv-import", args.organization, 0, 0, "cli"))
            repo = services.repo_for(Access(who, services.fhir_base))
            try:
                org = services.repo.read("Organization", args.organization).content or {}
            except Exception:  # noqa: BLE001 - an unknown organisation is the operator's mistake
                raise CliError(f"no Organization/{args.organization}") from None
            try:
                results = import_rows(
                    repo,
                    text,
                    organization=args.organization,
                    org_name=str(org.get("name") or args.organization),
                )
            except ValueError as exc:
                raise CliError(str(exc)) from None
            for r in results:
                print(f"line {r.line}\t{r.task_id}\t{r.result}" + (f"\t{r.detail}" if r.detail else ""))
            counts = {
                k: sum(1 for r in results if r.result == k) for k in ("changed", "unchanged", "refused")
            }
            print(", ".join(f"{k}: {v}" for k, v in counts.items()), file=sys.stderr)
            return 1 if counts["refused"] else 0
        from .links import issue_link, revoke_links

        if args.revoke:
            print(f"revoked {revoke_links(services, args.task_id)} link(s) of Task/{args.task_id}")
            return 0
        task = services.repo.read("Task", args.task_id).content or {}
        owner = str((task.get("owner") or {}).get("reference") or "")
        if not owner.startswith("Organization/"):
            raise CliError(f"Task/{args.task_id} has no owner Organization")
        if args.days is not None and not 1 <= args.days <= 90:
            raise CliError("--days must be 1-90")
        token = issue_link(services, args.task_id, owner.split("/", 1)[1], "cli", days=args.days)
        days = args.days or settings.referral_link_days
        until = datetime.fromtimestamp(datetime.now(UTC).timestamp() + 86400 * days, UTC).date()
        print(f"{settings.base_url}/r/{token}\t(works until {until})")
        return 0
    finally:
        services.engine.dispose()
