"""The coach's and the patient's pages: server-rendered Jinja2 templates, a little plain JavaScript, no
business rules (those live in the coaching service; the pages gather and show its figures).

``install_web(app)`` adds the page routes under ``/app``, the static files under ``/app/static``, the site
icon at ``/favicon.ico``, and HTML error pages for everything below ``/app`` (:class:`.pages.HtmlErrors`).
See docs/web.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from .directory import router as directory_router
from .pages import STATIC_DIR, HtmlErrors
from .routes import api_router, router

__all__ = ["install_web"]


def install_web(app: FastAPI) -> None:
    """Mount the pages (``/app/...``) and their static files (``/app/static``) on ``app``."""
    from .referrals import router as referral_pages  # /app/…/referrals (docs/referrals.md)

    app.include_router(router)
    app.include_router(referral_pages)
    app.include_router(directory_router)  # /app/directory (docs/community.md)
    app.include_router(api_router)
    app.mount("/app/static", StaticFiles(directory=STATIC_DIR), name="web-static")

    async def favicon() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "favicon.ico",
            media_type="image/x-icon",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
    # Outside Starlette's ServerErrorMiddleware, so even a 500 below /app becomes a page (install_security_headers,
    # called after this, wraps it in turn: the error pages get the same headers as any page).
    build = app.build_middleware_stack

    def build_with_html_errors() -> Any:
        return HtmlErrors(build())

    app.build_middleware_stack = build_with_html_errors  # type: ignore[method-assign]
