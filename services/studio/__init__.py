"""The Studio: the web page artists use to make walks and landscape videos (app `studio`).

Plain HTML, CSS and JS modules (`<script type="module">`) in `static/`, no build step and nothing fetched from elsewhere (the
machine and its users may be offline). The page talks to the two job apps on the same origin
(`../artwalks/jobs`, `../conclvd/jobs`), so one Serve proxy serves everything.

The page's files hold no data and call nothing on the server, so they are public; every job,
image and video comes from the job API, which checks the API token when one is set. Without a
valid token the page shows only its token prompt (docs/studio.md, "Access").

Serve config entry point (``import_path``): `services.studio:build_studio` (no args).
"""

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, Response
from ray import serve

from inkwalk.errors import InkwalkError
from services import http_guard

STATIC = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
# the page's files, named once at import: a request can only ever name one of these
FILES = {p.name: MEDIA_TYPES[p.suffix] for p in STATIC.iterdir() if p.suffix in MEDIA_TYPES}
# Only our own files, scripts and styles; images and videos from this origin (and the browser's
# own object URLs for thumbnails of paintings not yet uploaded); never framed by another site.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; media-src 'self'; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate (cheap: ETag), so an upgraded Studio shows at once
}

studio_api = FastAPI(title="inkwalk Studio", docs_url=None, redoc_url=None, openapi_url=None)
http_guard.install(studio_api)  # never configured: public files, no request body on any route


def _file(name: str) -> Response:
    if name not in FILES:
        raise HTTPException(404, f"the Studio has no file {name!r}")
    return FileResponse(STATIC / name, media_type=FILES[name], headers=HEADERS)


@serve.deployment(name="Studio", ray_actor_options={"num_cpus": 0.05}, max_ongoing_requests=32)
@serve.ingress(studio_api)
class Studio:
    """Serves the page's files; everything else is the job apps' business."""

    @studio_api.get("/", include_in_schema=False)
    def index(self) -> Response:  # /studio redirects here (/studio/), so the page's relative URLs resolve
        return _file("index.html")

    @studio_api.get("/{name}", include_in_schema=False)
    def asset(self, name: str) -> Response:
        return _file(name)


def build_studio(args: dict | None = None) -> serve.Application:
    """The `studio` app (Serve config builder); it takes no args of its own."""
    args = dict(args or {})
    options = dict(args.pop("deployment_options", {}).get("Studio", {}))  # from apps_from_config
    if args:
        raise InkwalkError(f"the studio app takes no args, got {sorted(args)}")
    return Studio.options(**options).bind()
