"""The HTTP edge over real HTTP: every app of the CPU config behind a token, on the local Ray.

What issue 24 found from outside, each as a request an attacker sends: bodies without the token
(memory), cross-site cookie requests, trickling uploads, unstorable text, the docs.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import served_apps

pytestmark = pytest.mark.ray

httpx = pytest.importorskip("httpx")
psutil = pytest.importorskip("psutil")

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "guard-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEADLINE_S = 4.0
STATE: dict = {}


@pytest.fixture(scope="module")
def guarded(ray_session, tiny_models, tmp_path_factory):
    store = tmp_path_factory.mktemp("results")
    STATE["store"] = store
    common = {"store": str(store), "models_dir": str(tiny_models), "api_token": TOKEN,
              "guard": {"max_concurrent_uploads": 2, "upload_deadline_s": DEADLINE_S}}
    with served_apps(ROOT / "cluster" / "serve_config.cpu.yaml",
                     overrides={"artwalks": common, "conclvd": common}) as port, \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        STATE["port"] = port
        yield client


def _actor_process(class_suffix: str):
    from ray._private.state import actors

    alive = [a for a in actors().values() if a["ActorClassName"].endswith(class_suffix) and a["State"] == "ALIVE"]
    return psutil.Process(int(alive[0]["Pid"]))


def _raw(head: str, body_blocks=(), read: bool = True) -> bytes:
    """Send a request by hand (headers, then body blocks until the server stops listening); the status line."""
    with socket.create_connection(("127.0.0.1", STATE["port"]), timeout=30) as s:
        s.sendall(head.encode())
        try:
            for block in body_blocks:
                s.sendall(block)
        except (BrokenPipeError, ConnectionResetError):  # answered and closed: the rest is never read
            pass
        try:
            return s.recv(4096).split(b"\r\n")[0] if read else b""
        except ConnectionResetError:
            return b"(reset)"


def test_large_bodies_without_the_token_get_401_and_memory_stays_flat(guarded):
    watched = {name: _actor_process(name) for name in ("ArtWalksIngress", "ConCLVDIngress", "ProxyActor")}
    base = {name: p.memory_info().rss for name, p in watched.items()}
    peak, done = dict(base), threading.Event()

    def sample():
        while not done.is_set():
            for name, p in watched.items():
                peak[name] = max(peak[name], p.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    size = 150 * 2**20
    block = b"x" * 2**20
    cases = [("POST", "/conclvd/jobs", "application/json"), ("POST", "/artwalks/jobs", "multipart/form-data; boundary=b"),
             ("PUT", "/conclvd/jobs", "application/json"), ("POST", "/studio/", "application/json")]
    try:
        for method, path, kind in cases:
            for framing in ("length", "chunked"):
                length = f"Content-Length: {size}" if framing == "length" else "Transfer-Encoding: chunked"
                blocks = [block] * 150 if framing == "length" else [b"100000\r\n" + block + b"\r\n"] * 150
                status = _raw(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n{length}\r\n\r\n", blocks)
                expected = b" 413 " if path.startswith("/studio") else b" 401 "
                assert expected in status, (method, path, framing, status)
    finally:
        done.set()
        sampler.join()
    grown = {name: (peak[name] - base[name]) / 2**20 for name in watched}
    STATE["grown_mib"] = grown
    print("RSS growth (MiB) over 8 refused 150 MiB bodies:", {k: round(v) for k, v in grown.items()})
    assert grown["ArtWalksIngress"] < 40 and grown["ConCLVDIngress"] < 40, grown
    assert guarded.get("/conclvd/jobs", headers=AUTH).status_code == 200


def test_docs_and_schema_need_the_token_and_load_nothing_from_elsewhere(guarded):
    for path in ("/artwalks/docs", "/conclvd/openapi.json", "/artwalks/docs-assets/swagger-ui-bundle.js"):
        assert guarded.get(path).status_code == 401
        assert guarded.get(path, headers=AUTH).status_code == 200
    page = guarded.get("/conclvd/docs", headers=AUTH).text
    assert "docs-assets/swagger-ui-bundle.js" in page and "https://" not in page
    assert guarded.get("/conclvd/redoc", headers=AUTH).status_code == 404
    assert guarded.get("/studio/").status_code == 200  # the page itself is public: it asks for the token


def test_cross_site_cookie_requests_are_refused_and_same_origin_ones_pass(guarded):
    host = f"127.0.0.1:{STATE['port']}"
    job = "/conclvd/jobs/0123456789abcdef0123456789abcdef"
    cookie = {"Cookie": f"inkwalk_token={TOKEN}"}
    for proof in ({"Origin": "http://127.0.0.1:1"}, {"Sec-Fetch-Site": "same-site"}, {}):
        r = guarded.delete(job, headers={**cookie, **proof})
        assert r.status_code == 403 and "cross-site" in r.json()["detail"]
        form = guarded.post("/conclvd/jobs", headers={**cookie, **proof, "Content-Type": "text/plain"},
                            content=json.dumps({"prompt": "hills"}))
        assert form.status_code == 403
    assert guarded.delete(job, headers={**cookie, "Origin": f"http://{host}"}).status_code == 404
    assert guarded.delete(job, headers=AUTH).status_code == 404


def test_unstorable_text_is_refused_and_listings_keep_working(guarded):
    for body in (b'{"prompt": "hills \\ud800"}', b'{"prompt": "hills", "settings": {"frames": ' + b"9" * 5000 + b"}}",
                 b'{"prompt": "hills", "settings": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
        r = guarded.post("/conclvd/jobs", content=body, headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 422 and isinstance(r.json()["detail"], str) and len(r.text) < 300, r.text
    files = [("paintings", ("a.png", b"\x89PNG", "image/png"))] * 2
    r = guarded.post("/artwalks/jobs", headers=AUTH, files=files, data={"settings": '{"seed": "\\udc80"}'})
    assert r.status_code == 422 and "cannot be stored" in r.json()["detail"], r.text
    bad_name = (b'--b\r\nContent-Disposition: form-data; name="paintings"; filename="\xff.png"\r\n\r\nx\r\n--b--\r\n')
    r = guarded.post("/artwalks/jobs", content=bad_name,
                     headers={**AUTH, "Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 422 and "file name" in r.json()["detail"], r.text
    r = guarded.post("/conclvd/jobs", json={"prompt": 5 * ["x" * 10_000]}, headers=AUTH)
    assert r.status_code == 422 and len(r.text) < 300  # one line, the input not echoed back
    for app in ("artwalks", "conclvd"):
        assert guarded.get(f"/{app}/jobs", headers=AUTH).status_code == 200


def test_slow_uploads_are_bounded_in_number_and_time_and_listing_answers(guarded):
    head = ("POST /artwalks/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN + "\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n")

    def trickle() -> bytes:
        with socket.create_connection(("127.0.0.1", STATE["port"]), timeout=30) as s:
            s.sendall(head.encode() + b"--b\r\n")
            for _ in range(int(DEADLINE_S * 4)):  # a byte every 0.5 s: under any gap limit
                time.sleep(0.5)
                try:
                    s.sendall(b"C")
                except OSError:
                    break
            return s.recv(4096).split(b"\r\n")[0]

    with ThreadPoolExecutor(2) as pool:
        t0 = time.monotonic()
        slow = [pool.submit(trickle) for _ in range(2)]
        time.sleep(1.0)
        third = _raw(head, [b"--b\r\n"])
        listing = guarded.get("/artwalks/jobs", headers=AUTH)
        answered = time.monotonic() - t0
        results = [f.result() for f in slow]
        took = time.monotonic() - t0
    assert b" 503 " in third and listing.status_code == 200 and answered < DEADLINE_S
    assert all(b" 408 " in r for r in results), results
    assert took < DEADLINE_S + 6
    leftovers = [p for p in (STATE["store"] / "jobs" / "artwalks").glob("*") if not (p / "job.json").exists()]
    assert leftovers == []  # refused and aborted uploads leave no folder behind
