"""`/docs`: Swagger UI served from this app, its assets from the pinned `swagger-ui-bundle-v2` package.

FastAPI's own `/docs` page loads an unpinned Swagger UI from a CDN into the origin that holds
the API token (in the Studio's cookie), so whoever controls that CDN file could act with the
token. Here the page, its script and its style come from this app, behind the token like every
route (`services.http_guard`), under a policy that runs no other script. `/redoc` (CDN only) is
not offered.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from swagger_ui_bundle import swagger_ui_path

ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8"}
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                      "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
# Relative URLs: the page lives at <route prefix>/docs, beside openapi.json and docs-assets/.
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} API</title>
<link rel="stylesheet" href="docs-assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="docs-assets/swagger-ui-bundle.js"></script>
<script src="docs-assets/start.js"></script></body></html>
"""
START = 'window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true});\n'


def add_docs(api: FastAPI) -> None:
    """Add `/docs` and its assets to an app built with ``docs_url=None, redoc_url=None``."""
    if api.docs_url or api.redoc_url:
        raise ValueError("build the app with docs_url=None and redoc_url=None: add_docs serves /docs")
    page = PAGE.format(title=api.title.replace("<", "&lt;"))

    @api.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page, headers=HEADERS)

    @api.get("/docs-assets/{name}", include_in_schema=False)
    def docs_asset(name: str):
        if name == "start.js":
            return PlainTextResponse(START, media_type=ASSETS["swagger-ui-bundle.js"], headers=HEADERS)
        if name not in ASSETS:
            raise HTTPException(404, "no such docs asset")
        return FileResponse(Path(swagger_ui_path) / name, media_type=ASSETS[name], headers=HEADERS)
