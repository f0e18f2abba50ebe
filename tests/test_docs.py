"""Docs are tested: routes, settings, CLI commands and README commands stay documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fhir_ecr.cli import build_parser
from fhir_ecr.config import settings_markdown
from fhir_ecr.fhir.routes import router

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_page_is_generated_from_settings() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == settings_markdown(), "run `make docs`"


def test_every_fhir_route_is_in_the_api_guide() -> None:
    rows = [line for line in (ROOT / "docs" / "api.md").read_text().splitlines() if line.startswith("| `")]
    for route in router.routes:
        if not getattr(route, "include_in_schema", True):
            continue
        path = re.compile(re.escape(route.path) + r"(?![\w/{])")
        for method in route.methods:
            assert any(path.search(row) and method in row.split("|")[1] for row in rows), (
                f"{method} {route.path} is not in the route table of docs/api.md"
            )


def test_every_cli_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        assert f"mecr {name}" in readme, f"`mecr {name}` is not in the README"


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("\n")[:6]
    assert any(line.startswith("make demo") for line in head)
    assert any(line.startswith("make test") for line in head)


def test_makefile_targets_named_in_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"`make ([a-z-]+)`", (ROOT / "README.md").read_text()):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_the_api_page_works_offline(browser: Any, live_server: Any) -> None:
    """/docs loads Swagger UI from mECR itself: with every request to another host refused, the operations
    are listed (and none was even tried)."""
    from urllib.parse import urlsplit

    elsewhere: list[str] = []

    def only_local(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context = browser.new_context()
    try:
        page = context.new_page()
        page.route("**/*", only_local)
        page.goto(f"{live_server.url}/docs")
        page.wait_for_selector(".opblock", timeout=20_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert any("/fhir/{rtype}" in p.replace("\u200b", "") for p in paths), paths[:10]
        assert "/fhir/metadata" in [p.replace("\u200b", "") for p in paths]
        assert elsewhere == []
        # ReDoc renders offline too (its footer's logo is the one thing it asks another host for)
        page.goto(f"{live_server.url}/redoc")
        page.wait_for_selector("[role=menuitem], .menu-content", timeout=20_000)
        assert "/fhir/metadata" in page.content()
    finally:
        context.close()


def _documented_text() -> str:
    return (
        "\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))
        + (ROOT / "README.md").read_text()
    )


def _template(path: str) -> str:
    """A route path with its parameters unnamed: ``/app/patients/{id}`` and ``…/{patient_id}`` are one route."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def _app_routes(app: Any) -> set[str]:
    paths: set[str] = set()

    def walk(routes: Any) -> None:
        for r in routes:
            if hasattr(r, "original_router"):
                walk(r.original_router.routes)
            elif hasattr(r, "routes") and not hasattr(r, "methods"):
                walk(r.routes)
            elif hasattr(r, "methods") and hasattr(r, "path"):
                paths.add(r.path)

    walk(app.routes)
    # the API explorer's own pages (FastAPI's) and the static files are not mECR's routes
    return {p for p in paths if not p.startswith(("/docs", "/redoc", "/static-offline-docs", "/app/static"))}


def test_every_route_of_the_app_is_documented(tmp_path: Path) -> None:
    """Every route the application serves (FHIR, SMART, pages, uploads, sync, health) is named in the docs."""
    from fhir_ecr.app import create_app
    from fhir_ecr.composition import build_services
    from fhir_ecr.config import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'docs.db'}", environment="test")
    services = build_services(settings)
    try:
        app = create_app(settings, services=services)
    finally:
        services.engine.dispose()
    text = _template(_documented_text())
    missing = [
        path
        for path in sorted(_app_routes(app))
        if not re.search(re.escape(_template(path)) + r"(?![\w/{])", text)
    ]
    assert not missing, f"routes not named in docs/*.md or README.md: {missing}"


def _subcommands(parser: Any, prefix: str) -> list[str]:
    import argparse

    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found += _subcommands(sub, f"{prefix} {name}")
    return found


def test_every_cli_subcommand_is_documented() -> None:
    """`mecr ehr add`, `mecr sync pull`, …: every command and sub-command is named in the README or docs."""
    text = _documented_text()
    missing = [
        c for c in _subcommands(build_parser(), "mecr") if not re.search(re.escape(c) + r"(?![\w-])", text)
    ]
    assert not missing, f"commands not named in docs/*.md or README.md: {missing}"
