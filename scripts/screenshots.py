"""Screenshots of every page at desktop (1280 px) and phone (390 px) width into docs/screenshots/.

Serves mECR on a throwaway SQLite database with the coaching demo data, signs in as the demo coach and as the
demo patient (server-side sessions, as a SMART launch would create them) and photographs each page with
headless Chromium (Playwright, ``/usr/bin/chromium`` by default).

Usage::

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGES = [  # (file name, who, path)
    ("caseload", "coach", "/app/caseload"),
    ("patient", "coach", "/app/patients/demo-ana"),
    ("session-form", "coach", "/app/patients/demo-ana/sessions/new"),
    ("goal-form", "coach", "/app/patients/demo-ana/goals/new"),
    ("habits", "coach", "/app/patients/demo-ana/habits"),
    ("coach-messages", "coach", "/app/patients/demo-ana/messages"),
    ("print", "coach", "/app/patients/demo-ana/print"),
    ("patient-app", "patient", "/app/me"),
    ("patient-messages", "patient", "/app/me/messages"),
    ("signin", None, "/app/caseload"),
]
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    import uvicorn
    from fastapi.testclient import TestClient
    from playwright.sync_api import sync_playwright

    from fhir_ecr.app import build_services, create_app
    from fhir_ecr.auth import Principal
    from fhir_ecr.auth.sessions import SESSION_COOKIE, create_session
    from fhir_ecr.coaching.demo import demo_coaching_bundles
    from fhir_ecr.config import Settings
    from fhir_ecr.web.messaging import send_message
    from smart_launch.scopes import ScopeSet
    from tests.conftest import free_port

    port = free_port()
    db = Path(tempfile.mkdtemp()) / "screens.db"
    settings = Settings(database_url=f"sqlite:///{db}", base_url=f"http://127.0.0.1:{port}", environment="test",
                        auth="on")
    services = build_services(settings)
    app = create_app(settings, services=services)
    # Load the demo through the API as the (local, development-only) developer principal.
    dev_settings = settings.model_copy(update={"auth": "off"})
    with TestClient(create_app(dev_settings, services=build_services(dev_settings, migrate=False))) as c:
        for bundle in demo_coaching_bundles(date.today()):
            c.post("/fhir", json=bundle).raise_for_status()
    send_message(services.repo, "demo-ana", "Rainy week — I walked in the mall twice.", from_patient=True)
    send_message(services.repo, "demo-ana", "Great idea! Keep the lunchtime walks going.", from_patient=False,
                 sender="Practitioner/demo-coach-person")
    send_message(services.repo, "demo-ana", "Will do. Can we move Tuesday's session?", from_patient=True)
    coach = Principal(kind="practitioner", subject="Practitioner/demo-coach-person",
                      scopes=ScopeSet.parse("user/*.cruds"), fhir_user="Practitioner/demo-coach-person",
                      display="Jo Okafor")
    patient = Principal(kind="patient", subject="Patient/demo-ana", scopes=ScopeSet.parse("patient/*.cruds"),
                        fhir_user="Patient/demo-ana", patient_id="demo-ana", display="Ana Demo")
    cookies = {"coach": create_session(services, coach, context={"need_patient_banner": True})[0],
               "patient": create_session(services, patient)[0]}

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium)
            for size_name, (width, height) in WIDTHS.items():
                for who in ("coach", "patient", None):
                    context = browser.new_context(viewport={"width": width, "height": height},
                                                  device_scale_factor=1, service_workers="block")
                    if who:
                        context.add_cookies([{"name": SESSION_COOKIE, "value": cookies[who],
                                              "url": f"http://127.0.0.1:{port}"}])
                    page = context.new_page()
                    for name, page_who, path in PAGES:
                        if page_who != who:
                            continue
                        page.goto(f"http://127.0.0.1:{port}{path}")
                        target = out / f"{name}-{size_name}.png"
                        page.screenshot(path=str(target), full_page=True)
                        print(target.relative_to(ROOT) if target.is_relative_to(ROOT) else target)
                    context.close()
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
