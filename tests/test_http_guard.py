"""The HTTP edge (services.http_guard, services.safe_json, services.api_docs) without Ray.

Requests are driven straight through the ASGI app with a `receive` that records every body
chunk it hands out, so "refused before a body byte was read" is checked exactly.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel

from services import http_guard, safe_json
from services.api_docs import add_docs
from services.limits import RequestError

TOKEN = "s3cret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
COOKIE = {"cookie": f"inkwalk_token={TOKEN}"}
JSON = {"content-type": "application/json"}


class Job(BaseModel):
    prompt: str
    frames: int = 4


def _app(**settings) -> FastAPI:
    api = FastAPI(docs_url=None, redoc_url=None)
    http_guard.install(api)
    add_docs(api)
    options = {"max_json_bytes": 200, "upload_deadline_s": 5.0, "max_concurrent_uploads": 2, **settings}
    http_guard.configure(api, http_guard.Guard(TOKEN, 1000, http_guard.GuardSettings(**options)))

    @api.post("/jobs")
    def submit(job: Job) -> dict:
        return {"prompt": job.prompt, "frames": job.frames}

    @api.get("/jobs")
    def jobs() -> dict:
        return {"jobs": []}

    @api.delete("/jobs/{job_id}")
    def delete(job_id: str) -> dict:
        return {"deleted": job_id}

    @api.post("/upload")
    async def upload(request: Request) -> dict:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    return api


async def _call(app, method: str, path: str, headers: dict, chunks: list[bytes] = (), gap_s: float = 0.0,
                hang: bool = False):
    """(status, JSON body, response headers, body chunks the app pulled) of one request."""
    chunks, pulled, sent = list(chunks), [], []

    async def receive() -> dict:
        if chunks:
            await asyncio.sleep(gap_s)
            pulled.append(chunks.pop(0))
            return {"type": "http.request", "body": pulled[-1], "more_body": bool(chunks) or hang}
        await asyncio.sleep(3600)  # the client stays connected (and, with `hang`, never ends its body)

    async def send(message: dict) -> None:
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": raw, "scheme": "http", "server": ("inkwalk.test", 8000), "client": ("127.0.0.1", 5),
             "root_path": "", "http_version": "1.1", "asgi": {"version": "3.0"}}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    answer_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = body
    return start["status"], parsed, answer_headers, pulled


def call(app, *args, **kwargs):
    return asyncio.run(_call(app, *args, **kwargs))


BIG = [b"x" * 1_000_000] * 3
BODIES = {  # every kind of body: declared JSON, multipart, chunked without a length
    "json": ({"content-type": "application/json", "content-length": "3000000"}, BIG),
    "multipart": ({"content-type": "multipart/form-data; boundary=b", "content-length": "3000000"}, BIG),
    "chunked": ({"content-type": "application/json", "transfer-encoding": "chunked"}, BIG),
}


@pytest.mark.parametrize("kind", sorted(BODIES))
@pytest.mark.parametrize("method,path", [("POST", "/jobs"), ("POST", "/upload"), ("PUT", "/jobs"),
                                         ("DELETE", "/jobs/1"), ("GET", "/jobs")])
@pytest.mark.parametrize("credentials", [{}, {"authorization": "Bearer wrong"}, {"cookie": "inkwalk_token=wrong"}])
def test_a_request_without_the_token_gets_401_before_a_body_byte_is_read(kind, method, path, credentials):
    headers, chunks = BODIES[kind]
    status, body, answer, pulled = call(_app(), method, path, {**headers, **credentials}, chunks)
    assert status == 401 and pulled == [] and "token" in body["detail"] and answer["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/docs-assets/swagger-ui-bundle.js"])
def test_docs_and_the_schema_need_the_token_too(path):
    assert call(_app(), "GET", path, {})[0] == 401
    status, body, answer, _ = call(_app(), "GET", path, AUTH)
    assert status == 200


def test_docs_load_no_script_from_another_origin():
    _, page, answer, _ = call(_app(), "GET", "/docs", AUTH)
    page = page.decode()
    assert "<script" in page and "http://" not in page and "https://" not in page and "//" not in page.replace(
        "<!doctype html>", "")
    assert "script-src" not in answer["content-security-policy"]  # default-src 'self' covers scripts
    assert "default-src 'self'" in answer["content-security-policy"]
    status, script, _, _ = call(_app(), "GET", "/docs-assets/swagger-ui-bundle.js", AUTH)
    assert status == 200 and b"SwaggerUIBundle" in script and len(script) > 100_000
    assert call(_app(), "GET", "/docs-assets/..%2Fetc", AUTH)[0] == 404
    assert call(_app(), "GET", "/redoc", AUTH)[0] == 404


def test_json_bodies_are_capped_by_length_and_while_streaming():
    app = _app()
    status, body, _, pulled = call(app, "POST", "/jobs", {**AUTH, "content-length": "201"}, [b"{}"])
    assert status == 413 and pulled == [] and "200" in body["detail"]
    chunked = {**AUTH, **JSON, "transfer-encoding": "chunked"}
    status, body, _, pulled = call(app, "POST", "/jobs", chunked, [b"[" + b" " * 150] * 100)
    assert status == 413 and len(pulled) == 2  # stopped at the chunk that crossed the cap
    status, body, _, _ = call(app, "POST", "/jobs", chunked, [b'{"prompt": "ink", ', b'"frames": 3}'])
    assert (status, body) == (200, {"prompt": "ink", "frames": 3})


def test_uploads_are_capped_while_streaming_and_a_lying_length_does_not_help():
    app = _app()
    multipart = {**AUTH, "content-type": "multipart/form-data; boundary=b"}
    status, body, _, pulled = call(app, "POST", "/upload", {**multipart, "content-length": "1001"}, [b"x"])
    assert status == 413 and pulled == []
    status, body, _, pulled = call(app, "POST", "/upload", {**multipart, "transfer-encoding": "chunked"},
                                   [b"x" * 400] * 10)
    assert status == 413 and len(pulled) == 3
    status, body, _, _ = call(app, "POST", "/upload", {**multipart, "content-length": "800"}, [b"x" * 400] * 2)
    assert (status, body) == (200, {"size": 800})


def test_a_trickling_body_meets_the_overall_deadline_not_only_the_gap_limit():
    app = _app(upload_deadline_s=0.5)
    for path, kind in (("/upload", "multipart/form-data; boundary=b"), ("/jobs", "application/json")):
        t0 = time.monotonic()
        status, body, _, pulled = call(app, "POST", path, {**AUTH, "content-type": kind,
                                                            "transfer-encoding": "chunked"},
                                       [b" "] * 1000, gap_s=0.05)
        assert status == 408 and "0.5 s" in body["detail"]
        assert time.monotonic() - t0 < 2.0 and 3 < len(pulled) < 20


def test_concurrent_uploads_are_bounded_and_listing_answers_meanwhile():
    app = _app(max_concurrent_uploads=2, upload_deadline_s=1.5)
    multipart = {**AUTH, "content-type": "multipart/form-data; boundary=b", "transfer-encoding": "chunked"}

    async def scenario():
        slow = [asyncio.create_task(_call(app, "POST", "/upload", multipart, [b"x"], hang=True)) for _ in range(2)]
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        refused = await _call(app, "POST", "/upload", multipart, [b"x"])
        listing = await _call(app, "GET", "/jobs", AUTH)
        quick = time.monotonic() - t0
        hung = await asyncio.gather(*slow)
        after = await _call(app, "POST", "/upload", {**multipart}, [b"x" * 10])
        return refused, listing, quick, hung, after

    refused, listing, quick, hung, after = asyncio.run(scenario())
    assert refused[0] == 503 and refused[2]["retry-after"] == "10" and refused[3] == []
    assert listing[0] == 200 and quick < 0.5
    assert [h[0] for h in hung] == [408, 408]
    assert after[:2] == (200, {"size": 10})  # the slots came back


CROSS_SITE = {  # what a browser sends for a form or no-cors fetch from another port or subdomain
    "another port, fetch metadata": {"sec-fetch-site": "same-site", "origin": "http://inkwalk.test:9999"},
    "sibling subdomain, fetch metadata": {"sec-fetch-site": "same-site", "origin": "http://evil.inkwalk.test:8000"},
    "another site": {"sec-fetch-site": "cross-site", "origin": "https://evil.example"},
    "another port, Origin only": {"origin": "http://inkwalk.test:9999"},
    "null origin (sandboxed form)": {"origin": "null"},
    "no proof at all": {},
}


@pytest.mark.parametrize("where", sorted(CROSS_SITE))
@pytest.mark.parametrize("method,path", [("POST", "/jobs"), ("DELETE", "/jobs/abc"), ("POST", "/upload")])
def test_cookie_requests_that_change_state_must_come_from_the_same_origin(where, method, path):
    headers = {**COOKIE, **CROSS_SITE[where], "host": "inkwalk.test:8000", "content-type": "text/plain",
               "content-length": "20"}
    status, body, _, pulled = call(_app(), method, path, headers, [b'{"prompt": "x"}     '])
    assert status == 403 and pulled == [] and "cross-site" in body["detail"]


@pytest.mark.parametrize("proof", [{"sec-fetch-site": "same-origin", "origin": "http://inkwalk.test:8000"},
                                   {"origin": "http://inkwalk.test:8000"}])
def test_same_origin_cookie_requests_and_bearer_clients_work(proof):
    body = [b'{"prompt": "ink"}']
    headers = {"host": "inkwalk.test:8000", "content-type": "application/json", "content-length": "17"}
    assert call(_app(), "POST", "/jobs", {**headers, **COOKIE, **proof}, body)[:2] == (200, {"prompt": "ink",
                                                                                          "frames": 4})
    assert call(_app(), "POST", "/jobs", {**headers, **AUTH}, body)[0] == 200  # scripts send no Origin
    assert call(_app(), "GET", "/jobs", {**COOKIE, "sec-fetch-site": "cross-site"})[0] == 200  # <img>, <video>


UNSTORABLE = {
    "lone surrogate in a value": b'{"prompt": "ink \\ud800 wash"}',
    "lone surrogate in a key": b'{"prompt": "ink", "\\udfff": 1}',
    "huge integer": b'{"prompt": "ink", "frames": ' + b"9" * 5000 + b"}",
    "deep nesting": b'{"prompt": "ink", "x": ' + b"[" * 100 + b"]" * 100 + b"}",
    "NaN": b'{"prompt": "ink", "frames": NaN}',
    "overflowing float": b'{"prompt": "ink", "frames": 1e999}',
    "not UTF-8": b'{"prompt": "\xff\xfe"}',
    "not JSON": b'{"prompt": ',
}


@pytest.mark.parametrize("case", sorted(UNSTORABLE))
def test_unstorable_or_unbounded_json_gets_one_422_line(case):
    data = UNSTORABLE[case]
    app = _app(max_json_bytes=10_000)
    status, body, _, _ = call(app, "POST", "/jobs", {**AUTH, **JSON, "content-length": str(len(data))}, [data])
    assert status == 422 and isinstance(body["detail"], str) and "\n" not in body["detail"]
    assert len(body["detail"]) < 200


def test_safe_json_accepts_ordinary_json_and_names_the_field():
    assert safe_json.loads('{"size": [64, 64], "strength": 0.5, "name": "墨 ✓", "deep": [[[1]]]}') == {
        "size": [64, 64], "strength": 0.5, "name": "墨 ✓", "deep": [[[1]]]}
    assert safe_json.nesting_depth('{"a": "[[[[", "b": [{"c": "\\"]"}]}') == 3
    with pytest.raises(RequestError, match="^settings .*nested 40 levels"):
        safe_json.loads("[" * 40 + "]" * 40, "settings")


def test_validation_errors_are_one_short_line_without_the_input_echoed():
    app = _app(max_json_bytes=100_000)
    data = json.dumps({"prompt": "ink", "frames": "z" * 50_000}).encode()
    status, body, _, _ = call(app, "POST", "/jobs", {**AUTH, **JSON, "content-length": str(len(data))}, [data])
    assert status == 422 and isinstance(body["detail"], str) and len(body["detail"]) < 200
    assert body["detail"].startswith("frames: ") and "50000 characters" in body["detail"]
    data = json.dumps([1] * 10).encode()
    status, body, _, _ = call(app, "POST", "/jobs", {**AUTH, **JSON, "content-length": str(len(data))}, [data])
    assert status == 422 and len(body["detail"]) < 200


def test_huge_headers_are_not_echoed():
    for length in ("1" + "x" * 10_000, "9" * 10_000):
        status, body, _, _ = call(_app(), "POST", "/jobs", {**AUTH, "content-length": length}, [b"{}"])
        assert status == 400 and len(body["detail"]) < 100


def test_an_app_that_is_never_configured_serves_gets_and_refuses_bodies():
    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    http_guard.install(api)

    @api.get("/{name}")
    def page(name: str) -> dict:
        return {"name": name}

    assert call(api, "GET", "/index.html", {})[:2] == (200, {"name": "index.html"})
    for headers in ({"content-length": "5000000"}, {"transfer-encoding": "chunked"}):
        status, _, _, pulled = call(api, "POST", "/index.html", headers, BIG)
        assert status == 413 and pulled == []


def test_upload_messages_quote_long_field_names_cut(tmp_path):
    from inkwalk.store import Store
    from services.uploads import UploadLimits, receive

    class Upload:
        def __init__(self, body: bytes):
            self.body = body
            self.headers = {"content-type": "multipart/form-data; boundary=b", "content-length": str(len(body))}

        async def stream(self):
            yield self.body

    name = "x" * 3000
    body = f'--b\r\nContent-Disposition: form-data; name="{name}"; filename="a.png"\r\n\r\nxx\r\n--b--\r\n'.encode()
    limits = UploadLimits(10**6, 10**6, 4, ("paintings",), ("settings",))
    with pytest.raises(RequestError, match=r"unexpected file field 'x+'… \(3000 characters\)") as refused:
        asyncio.run(receive(Upload(body), Store(tmp_path), "inputs", limits))
    assert len(str(refused.value)) < 200
