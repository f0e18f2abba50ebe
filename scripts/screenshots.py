"""Screenshots of every page at desktop (1280 px) and phone (390 px) width into docs/screenshots/.

Serves mECR on a throwaway SQLite database with the whole demo (``examples/demo``, moved to today as ``mecr
demo`` moves it, in the demo's zone America/New_York), signs in as the demo coach and as the demo patient
(server-side sessions, as a SMART launch would create them) and photographs each page with headless Chromium
(Playwright, ``/usr/bin/chromium`` by default).

Beside the PNGs it writes ``docs/screenshots/index.json``: for each picture the page, its title and the names
of people it shows, and the colours of the stylesheet. ``tests/web/test_screenshots.py`` renders the same
pages from the same demo and fails when they no longer match, so the screenshots cannot silently fall out of
date when the demo's people or the pages' colours change.

Usage::

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEMO_TZ = "America/New_York"
PAGES = [  # (file name, who, path)
    ("caseload", "coach", "/app/caseload?scope=all"),
    ("patient", "coach", "/app/patients/demo-ana"),
    ("session-form", "coach", "/app/patients/demo-ana/sessions/new"),
    ("goal-form", "coach", "/app/patients/demo-ana/goals/new"),
    ("habits", "coach", "/app/patients/demo-ana/habits"),
    ("coach-messages", "coach", "/app/patients/demo-ana/messages"),
    ("print", "coach", "/app/patients/demo-ana/print"),
    ("not-found", "coach", "/app/patients/no-such-patient"),
    ("patient-app", "patient", "/app/me"),
    ("patient-messages", "patient", "/app/me/messages"),
    ("signin", None, "/app/caseload"),
    ("signed-out", None, "/app/signed-out?who=patient"),
]
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
MESSAGES = [  # (from the patient?, text)
    (True, "Rainy week — I walked in the mall twice."),
    (False, "Great idea! Keep the lunchtime walks going."),
    (True, "Will do. Can we move Tuesday's session?"),
]


def load_demo(services: Any) -> None:
    """Every demo file, moved to today as ``mecr demo`` moves it, and the demo conversation."""
    from fhir_ecr.cli import EXAMPLES_DIR
    from fhir_ecr.coaching.demo import demo_today, rebase_demo_bundle
    from fhir_ecr.fhir.bundles import process_bundle
    from fhir_ecr.web.messaging import send_message

    today = demo_today()
    for path in sorted(EXAMPLES_DIR.glob("*.json")):
        bundle = rebase_demo_bundle(json.loads(path.read_text()), today)
        process_bundle(services.repo, bundle, fhir_base=services.fhir_base, max_entries=10_000)
    for from_patient, text in MESSAGES:
        send_message(
            services.repo,
            "demo-ana",
            text,
            from_patient=from_patient,
            sender=None if from_patient else "Practitioner/demo-coach-person",
        )


def sign_in(services: Any) -> dict[str, str]:
    """Session cookies of the demo coach (Dana Whitfield) and the demo patient (Ana Lopez)."""
    from fhir_ecr.auth import Principal
    from fhir_ecr.auth.sessions import create_session
    from smart_launch.scopes import ScopeSet

    coach = Principal(
        kind="practitioner",
        subject="Practitioner/demo-coach-person",
        scopes=ScopeSet.parse("user/*.cruds"),
        fhir_user="Practitioner/demo-coach-person",
        display="Dana Whitfield",
    )
    patient = Principal(
        kind="patient",
        subject="Patient/demo-ana",
        scopes=ScopeSet.parse("patient/*.cruds"),
        fhir_user="Patient/demo-ana",
        patient_id="demo-ana",
        display="Ana Lopez",
    )
    return {
        "coach": create_session(services, coach, context={"need_patient_banner": True})[0],
        "patient": create_session(services, patient)[0],
    }


_NAMES = re.compile(r'class="(?:banner-name|row-name|who)"[^>]*>([^<]+)<')


def page_facts(page: str) -> dict[str, Any]:
    """What a screenshot shows that the demo decides: the page's title and the people it names."""
    title = re.search(r"<title>([^<]*)</title>", page)
    names = sorted({html.unescape(n).strip() for n in _NAMES.findall(page)})
    return {"title": html.unescape(title.group(1)) if title else "", "names": names}


def colours(css: str) -> dict[str, str]:
    """The colour custom properties of the stylesheet's ``:root``."""
    root = re.search(r":root\s*\{([^}]*)\}", css)
    return dict(re.findall(r"(--[\w-]+):\s*(#[0-9a-fA-F]{3,8})", root.group(1) if root else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    import uvicorn
    from playwright.sync_api import sync_playwright

    from fhir_ecr.app import create_app
    from fhir_ecr.auth.sessions import SESSION_COOKIE
    from fhir_ecr.composition import build_services
    from fhir_ecr.config import Settings
    from tests.conftest import free_port

    port = free_port()
    db = Path(tempfile.mkdtemp()) / "screens.db"
    settings = Settings(
        database_url=f"sqlite:///{db}",
        base_url=f"http://127.0.0.1:{port}",
        environment="test",
        auth="on",
        default_time_zone=DEMO_TZ,
    )
    services = build_services(settings)
    app = create_app(settings, services=services)
    load_demo(services)
    cookies = sign_in(services)

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {
        "colours": colours((ROOT / "fhir_ecr" / "web" / "static" / "app.css").read_text()),
        "pages": {},
    }
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium)
            # Each page at both widths before the next page: the caseload is photographed before the patient page
            # marks Ana's run-chart signals as seen, on the phone as on the desktop.
            for who in ("coach", "patient", None):
                contexts = {}
                for size_name, (width, height) in WIDTHS.items():
                    contexts[size_name] = context = browser.new_context(
                        viewport={"width": width, "height": height},
                        device_scale_factor=1,
                        service_workers="block",
                    )
                    if who:
                        context.add_cookies(
                            [
                                {
                                    "name": SESSION_COOKIE,
                                    "value": cookies[who],
                                    "url": f"http://127.0.0.1:{port}",
                                }
                            ]
                        )
                pages = {size: context.new_page() for size, context in contexts.items()}
                for name, page_who, path in PAGES:
                    if page_who != who:
                        continue
                    for size_name, page in pages.items():
                        page.goto(f"http://127.0.0.1:{port}{path}")
                        target = out / f"{name}-{size_name}.png"
                        page.screenshot(path=str(target), full_page=True)
                        index["pages"][target.name] = {
                            "who": who,
                            "path": path,
                            "width": WIDTHS[size_name][0],
                            **page_facts(page.content()),
                        }
                        print(target.relative_to(ROOT) if target.is_relative_to(ROOT) else target)
                for context in contexts.values():
                    context.close()
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
    (out / "index.json").write_text(json.dumps(index, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
