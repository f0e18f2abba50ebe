"""The coach's and the patient's pages: server-rendered Jinja2 templates, a little plain JavaScript, no
business rules (those live in the coaching service; the pages gather and show its figures).

``install_web(app)`` adds the page routes under ``/app`` and the static files under ``/app/static``.
See docs/web.md.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .pages import STATIC_DIR
from .routes import api_router, router

__all__ = ["install_web"]


def install_web(app: FastAPI) -> None:
    """Mount the pages (``/app/...``) and their static files (``/app/static``) on ``app``."""
    app.include_router(router)
    app.include_router(api_router)
    app.mount("/app/static", StaticFiles(directory=STATIC_DIR), name="web-static")
