"""The edge of every HTTP app: token, CSRF proof, body caps and deadlines before any route runs.

An ASGI middleware in front of each FastAPI app (`install`). It answers from the request line
and headers alone whenever it can, so a refused request costs no body bytes:

- **token** (when the app has one): ``Authorization: Bearer`` or the Studio's ``inkwalk_token``
  cookie, on every route, `/docs` and `/openapi.json` included; 401 before the body is read.
- **CSRF**: a state-changing request (POST, PUT, PATCH, DELETE) that carries only the cookie
  must come from the app's own origin (``Sec-Fetch-Site: same-origin``, else an ``Origin``
  whose host and port are the request's ``Host``); 403 otherwise. A page on another port or a
  sibling subdomain is *same-site*, so the cookie's ``SameSite=Strict`` does not stop it; this
  does. Bearer clients (the Studio's fetches, scripts) are not affected: a browser cannot add
  that header cross-origin without a CORS preflight, which these apps never grant.
- **bodies**: at most `max_concurrent_uploads` requests with a body at once per replica (503 +
  Retry-After past it, so slow uploads cannot take every request slot); multipart bodies capped
  at the app's upload limit, other bodies at `max_json_bytes`, by Content-Length up front and
  while streaming (chunked too), 413; the whole body within `upload_deadline_s`, 408.
- **JSON**: a non-multipart body is read here (it is small) and parsed by `services.safe_json`,
  so huge numbers, deep nesting and unstorable text get a 422 line before pydantic runs.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from pydantic import Field
from starlette.requests import cookie_parser

from inkwalk.config_model import ConfigModel
from services import safe_json
from services.limits import RequestError

COOKIE = "inkwalk_token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
Receive = Callable[[], Awaitable[dict]]


class GuardSettings(ConfigModel):
    """Edge limits of an app (app args ``guard:``)."""

    max_json_bytes: int = Field(64 * 1024, ge=1)  # a prompt and its settings are a few hundred bytes
    upload_deadline_s: float = Field(600.0, gt=0)  # the whole body, however steadily it trickles in
    max_concurrent_uploads: int = Field(8, ge=1)  # requests receiving a body at once, per ingress replica


@dataclass
class Guard:
    """What the middleware enforces for one app; `configure` puts it on the app's state."""

    token: str | None = None
    upload_bytes: int = 0  # multipart body cap; 0: the app takes no uploads
    settings: GuardSettings = field(default_factory=GuardSettings)
    accepts_json: bool = True  # False: the app takes no request body at all (the Studio)


def configure(api: FastAPI, guard: Guard) -> None:
    """Give an app its guard (the ingress does this once its args are known)."""
    api.state.guard = guard


def install(api: FastAPI) -> None:
    """Put the guard in front of `api` and answer validation errors in one short line.

    Until `configure` runs the app is closed to bodies and open to nothing that needs a token:
    the Studio, which serves public files only, is installed and never configured.
    """
    api.add_middleware(HttpGuard)
    api.add_exception_handler(RequestValidationError, _validation_error)


def clip(text: str, limit: int = 60) -> str:
    """`text` quoted for a message, cut to `limit` characters: never echo kilobytes back."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text)} characters)"


class HttpGuard:
    """The ASGI middleware (see the module docstring)."""

    def __init__(self, app) -> None:
        self.app = app
        self.receiving = 0

    async def __call__(self, scope: dict, receive: Receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        app_state = getattr(scope.get("app"), "state", None)
        guard = getattr(app_state, "guard", None) or Guard(accepts_json=False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._admit(scope, headers, guard)
        if refusal is not None:
            return await _answer(send, *refusal)
        if not _has_body(headers):
            return await self.app(scope, receive, send)
        self.receiving += 1
        try:
            await self._with_body(scope, headers, guard, receive, send)
        finally:
            self.receiving -= 1

    def _admit(self, scope: dict, headers: dict[str, str], guard: Guard) -> tuple | None:
        """(status, message, headers) refusing the request from its headers, or None."""
        if guard.token:
            authorization = headers.get("authorization", "")
            bearer = authorization.lower().startswith("bearer ")
            given = authorization[7:] if bearer else cookie_parser(headers.get("cookie", "")).get(COOKIE, "")
            if not hmac.compare_digest(given.encode("utf-8", "replace"), guard.token.encode()):
                return 401, "missing or wrong API token: send 'Authorization: Bearer <token>'", \
                    {"WWW-Authenticate": "Bearer"}
            if not bearer and scope["method"] not in SAFE_METHODS and not _same_origin(headers):
                return 403, ("cross-site request refused: the token cookie only works from this app's own "
                             "pages; scripts send 'Authorization: Bearer <token>'"), {}
        declared = headers.get("content-length")
        if declared is not None and not (declared.isdigit() and len(declared) <= 18):
            return 400, f"bad Content-Length header {clip(declared, 20)}", {}
        if not _has_body(headers):
            return None
        cap = _cap(headers, guard)
        if cap == 0:
            return 413, "this route takes no request body", {}
        if declared is not None and int(declared) > cap:
            return 413, f"the request body is {int(declared)} bytes; the limit is {cap}", {}
        if self.receiving >= guard.settings.max_concurrent_uploads:
            return 503, (f"overloaded: {self.receiving} uploads are arriving at this replica (limit "
                         f"{guard.settings.max_concurrent_uploads}); retry later"), {"Retry-After": "10"}
        return None

    async def _with_body(self, scope: dict, headers: dict[str, str], guard: Guard, receive: Receive, send) -> None:
        body = _BoundedBody(receive, _cap(headers, guard), guard.settings.upload_deadline_s)
        if _is_multipart(headers):  # streamed by the route into the store, bounded on the way
            started = False

            async def tracking_send(message: dict) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            try:
                return await self.app(scope, body.receive, tracking_send)
            except HTTPException as exc:  # raised by the bounded receive, unhandled by the route
                if started:
                    raise
                return await _answer(send, exc.status_code, exc.detail, exc.headers or {})
        try:
            data = await body.read_all()
            if data is None:  # the client went away
                return
            if data and _is_json(headers):
                safe_json.loads(data)
        except HTTPException as exc:
            return await _answer(send, exc.status_code, exc.detail, exc.headers or {})
        except RequestError as exc:
            return await _answer(send, exc.status, str(exc), {})
        await self.app(scope, _replay(data, receive), send)


class _BoundedBody:
    """A request's receive() with the size cap and the overall deadline applied while it streams."""

    def __init__(self, receive: Receive, cap: int, deadline_s: float) -> None:
        self.inner, self.cap, self.deadline_s = receive, cap, deadline_s
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + deadline_s
        self.size = 0
        self.done = False

    async def receive(self) -> dict:
        if self.done:  # the body is in: later calls wait for the disconnect, unbounded
            return await self.inner()
        left = self.deadline - self.loop.time()
        try:
            message = await asyncio.wait_for(self.inner(), max(left, 0.001))
        except asyncio.TimeoutError:
            raise HTTPException(408, f"the request body did not arrive within {self.deadline_s:g} s; "
                                     "send it again on a faster link") from None
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.cap:
                raise HTTPException(413, f"the request body is over {self.cap} bytes, the limit")
            self.done = not message.get("more_body", False)
        else:
            self.done = True
        return message

    async def read_all(self) -> bytes | None:
        data = bytearray()
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                return None
            data += message.get("body", b"")
            if self.done:
                return bytes(data)


def _replay(data: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    return replay


def _has_body(headers: dict[str, str]) -> bool:
    return headers.get("content-length", "0") not in ("", "0") or "chunked" in headers.get("transfer-encoding", "")


def _is_multipart(headers: dict[str, str]) -> bool:
    return headers.get("content-type", "").lower().startswith("multipart/form-data")


def _is_json(headers: dict[str, str]) -> bool:
    """Bodies FastAPI would parse as JSON: no Content-Type, application/json or ``+json``."""
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    return not kind or kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def _cap(headers: dict[str, str], guard: Guard) -> int:
    if _is_multipart(headers):
        return guard.upload_bytes
    return guard.settings.max_json_bytes if guard.accepts_json else 0


def _same_origin(headers: dict[str, str]) -> bool:
    """Did the browser say this request comes from a page of this very origin (host and port)?"""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = headers.get("origin", "")
    host = headers.get("host", "")
    return bool(host) and origin.split("://", 1)[-1].rstrip("/") == host


async def _answer(send, status: int, message: str, headers: dict[str, str]) -> None:
    """A one-line JSON refusal; the connection closes, so an unread body is never read."""
    body = json.dumps({"detail": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close")] + [(k.lower().encode(), str(v).encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's error list (which echoes the input) as one short line per error."""
    errors = exc.errors()
    lines = []
    for error in errors[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "path", "query"))
        got = f" (got {clip(str(error['input']), 40)})" if "input" in error and error["input"] is not None else ""
        lines.append(f"{where or 'request'}: {error.get('msg', 'invalid')}{got}")
    more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
    return JSONResponse({"detail": "; ".join(lines) + more}, status_code=422)
