"""The screenshots in docs/screenshots still show the demo as it is (issue #16.10).

``scripts/screenshots.py`` records beside the PNGs (``index.json``) each page's title and the names of the
people it shows, and the stylesheet's colours. These tests render the same pages from the same demo, server-side,
and fail when the demo's people, the pages' titles or the colours changed without ``make screenshots``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_ecr.app import create_app
from fhir_ecr.auth.sessions import SESSION_COOKIE

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
INDEX = json.loads((SHOTS / "index.json").read_text())
_spec = importlib.util.spec_from_file_location("mecr_screenshots", ROOT / "scripts" / "screenshots.py")
assert _spec is not None and _spec.loader is not None
screens = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(screens)


def test_every_screenshot_is_recorded_and_every_page_photographed() -> None:
    pngs = {p.name for p in SHOTS.glob("*.png")}
    assert pngs == set(INDEX["pages"]), "run `make screenshots` and commit docs/screenshots"
    wanted = {f"{name}-{size}.png" for name, _, _ in screens.PAGES for size in screens.WIDTHS}
    assert wanted == pngs, (
        "scripts/screenshots.py PAGES and docs/screenshots disagree: run `make screenshots`"
    )


def test_the_colours_are_the_stylesheets() -> None:
    css = (ROOT / "fhir_ecr" / "web" / "static" / "app.css").read_text()
    assert screens.colours(css) == INDEX["colours"], "app.css colours changed: run `make screenshots`"
    assert INDEX["colours"]["--primary"]  # the parser found them


@pytest.fixture
def demo_app(secure_services: Any, secure_settings: Any) -> Any:
    settings = secure_settings.model_copy(update={"default_time_zone": screens.DEMO_TZ})
    secure_services.settings = settings
    screens.load_demo(secure_services)
    return create_app(settings, services=secure_services)


def test_the_pages_show_what_the_screenshots_show(demo_app: Any, secure_services: Any) -> None:
    cookies = screens.sign_in(secure_services)
    seen = {}
    for file, shot in sorted(INDEX["pages"].items()):
        key = (shot["who"], shot["path"])
        if key not in seen:
            with TestClient(
                demo_app, raise_server_exceptions=False, base_url="http://127.0.0.1:8000"
            ) as client:
                if shot["who"]:
                    client.cookies.set(SESSION_COOKIE, cookies[shot["who"]])
                seen[key] = screens.page_facts(client.get(shot["path"]).text)
        assert seen[key] == {"title": shot["title"], "names": shot["names"]}, (
            f"{file} shows {shot['title']!r} {shot['names']}, the page now {seen[key]}: run `make screenshots`"
        )
    # the demo's people are the sandbox EHR's, by name, in the pictures as on the pages
    named = {n for shot in INDEX["pages"].values() for n in shot["names"]}
    assert {"Ana Lopez", "Brian Okafor", "Chloe Nguyen", "Dana Whitfield"} <= named
