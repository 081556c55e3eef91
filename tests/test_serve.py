"""Serve end to end over HTTP: both apps from cluster/serve_config.cpu.yaml on the local 2-CPU Ray.

One deployment of both apps per module (tiny models, small limits); the tests run in order
and share it: finished jobs from early tests must survive the ingress restart later on.
"""

from __future__ import annotations

import io
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import psnr, served_apps

httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]
SMALL_WALK = {"keyframes": 1, "frames": 2, "size": [64, 64], "hold": 0.25, "fps": 8, "upscale": "x2"}
# k paintings, m keyframes, n frames, h = round(hold * fps): (k-1)(m+1)(n+1) + 1 + k*h
SMALL_WALK_FRAMES_3 = 2 * 2 * 3 + 1 + 3 * 2
CONCLVD = {"frames": 3, "steps": 2, "size": 64}
STATE: dict = {}


def _png(image: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


def _paintings(k: int, size=(80, 64), seed: int = 0) -> list[bytes]:
    from inkwalk.paintings import collection

    return [_png(p) for p in collection(k, size=size, seed=seed)]



@pytest.fixture(scope="module")
def serve_apps(ray_session, tiny_models, tmp_path_factory):
    store = tmp_path_factory.mktemp("results")
    STATE["store"] = store
    two = {"autoscaling_config": {"min_replicas": 2, "max_replicas": 2}}
    common = {"store": str(store), "models_dir": str(tiny_models), "heartbeat_timeout_s": 2.0,
              "render": {"backoff_s": 0.3, "attempts": 4}}
    with served_apps(ROOT / "cluster" / "serve_config.cpu.yaml", overrides={
        "artwalks": {**common, "keyframer": "kandinsky",
                     "defaults": {"preset": "offline", "steps": 2, "frames": 2},
                     "limits": {"max_paintings": 4, "max_keyframes": 2, "max_frames_per_segment": 8,
                                "max_upload_bytes": 150_000, "max_total_upload_bytes": 400_000,
                                "max_pixels": 200 * 200, "max_active_jobs": 3},
                     "deployment_options": {"Interpolator": two}},
        "conclvd": {**common, "limits": {"max_video_frames": 8, "max_steps": 30, "max_size": 128,
                                         "max_prompt_chars": 200, "max_active_jobs": 2}},
    }) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client


def _wait(client, app: str, job_id: str, timeout: float = 120.0, until=("done", "failed", "cancelled")) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            status = client.get(f"/{app}/jobs/{job_id}").json()
        except (httpx.HTTPError, ValueError):  # an ingress replica being replaced
            time.sleep(0.5)
            continue
        assert 0.0 <= status["progress"] <= 1.0
        if status["state"] in until:
            return status
        time.sleep(0.3)
    raise AssertionError(f"{app} job {job_id} stuck: {status}")


def _submit_walk(client, images: list[bytes], settings: dict):
    files = [("paintings", (f"p{i}.png", data, "image/png")) for i, data in enumerate(images)]
    return client.post("/artwalks/jobs", files=files, data={"settings": json.dumps(settings)})


def _wait_running(app: str, timeout: float = 60.0) -> None:
    from ray import serve

    deadline = time.time() + timeout
    while getattr(serve.status().applications[app].status, "value", None) != "RUNNING":
        assert time.time() < deadline, serve.status().applications[app]
        time.sleep(0.2)


def _frames(data: bytes, tmp_path: Path) -> np.ndarray:
    from inkwalk.video import read_frames

    path = tmp_path / "got.mp4"
    path.write_bytes(data)
    return read_frames(path)


def test_artwalks_job_end_to_end_matches_the_in_process_renderer(serve_apps, tmp_path, tiny_models):
    from inkwalk.artwalks import load_walk_models
    from inkwalk.provenance import read_metadata
    from inkwalk.local_render import render_collection_in_process
    from inkwalk.walk_settings import WalkSettings

    images = _paintings(3)
    r = _submit_walk(serve_apps, images, SMALL_WALK)
    assert r.status_code == 202, r.text
    job = r.json()["job_id"]
    status = _wait(serve_apps, "artwalks", job)
    assert status["state"] == "done", status
    assert status["progress"] == 1.0 and status["frames"] == SMALL_WALK_FRAMES_3
    assert status["paintings"] == ["p0.png", "p1.png", "p2.png"] and status["previews"] == [0, 1]
    video = serve_apps.get(f"/artwalks/jobs/{job}/video")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    frames = _frames(video.content, tmp_path)
    assert frames.shape == (SMALL_WALK_FRAMES_3, 128, 128, 3)  # 64x64 walk upscaled x2
    assert read_metadata(tmp_path / "got.mp4")["settings"]["keyframes"] == 1

    # the same pieces in this process, with the same models: the same frames, seams included (the
    # paintings bit for bit; keyframes to float precision: replicas run torch on other thread counts)
    ws = WalkSettings.model_validate({"preset": "offline", "steps": 2, **SMALL_WALK, "keyframer": "kandinsky",
                                 "upscaler": "lanczos"})
    paths = []
    for i, data in enumerate(images):
        (tmp_path / f"p{i}.png").write_bytes(data)
        paths.append(tmp_path / f"p{i}.png")
    local = render_collection_in_process(paths, tmp_path / "local.mp4", ws, cache_dir=tmp_path / "cache",
                                         models_dir=tiny_models,
                                         models=load_walk_models(ws, models_dir=tiny_models, device="cpu"), sheet=False)
    assert local.frames == SMALL_WALK_FRAMES_3
    expected = _frames((tmp_path / "local.mp4").read_bytes(), tmp_path)
    paintings = [0, 1, 2, 8, 9, 10, 16, 17, 18]  # A, B and C, each held: (1 + h) frames
    assert np.array_equal(frames[paintings], expected[paintings])
    assert min(psnr(a, b) for a, b in zip(frames, expected)) > 35

    part = serve_apps.get(f"/artwalks/jobs/{job}/video", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == video.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(video.content)}"
    assert serve_apps.get(f"/artwalks/jobs/{job}/video", headers={"Range": "bytes=999999-"}).status_code == 416
    sheet = serve_apps.get(f"/artwalks/jobs/{job}/keyframes")
    assert sheet.status_code == 200 and sheet.content[:4] == b"\x89PNG"
    assert serve_apps.get(f"/artwalks/jobs/{job}/previews/1").content[:4] == b"\x89PNG"
    assert serve_apps.get(f"/artwalks/jobs/{job}/paintings/2").content == images[2]
    listed = serve_apps.get("/artwalks/jobs", params={"limit": 1}).json()
    assert listed["total"] >= 1 and listed["jobs"][0]["job_id"] == job
    paths = serve_apps.get("/artwalks/openapi.json").json()["paths"]
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/video", "/jobs/{job_id}/keyframes"} <= set(paths)

    # again: every chunk is reused, nothing is rendered
    again = _wait(serve_apps, "artwalks", _submit_walk(serve_apps, images, SMALL_WALK).json()["job_id"])
    assert again["state"] == "done" and again["chunks_rendered"] == 0 and again["chunks_reused"] == 5
    STATE["artwalks_done"] = job


def test_conclvd_job_end_to_end(serve_apps, tmp_path):
    r = serve_apps.post("/conclvd/jobs", json={"prompt": "misty mountains over a river", "settings": CONCLVD})
    assert r.status_code == 202, r.text
    job = r.json()["job_id"]
    status = _wait(serve_apps, "conclvd", job, timeout=180)
    assert status["state"] == "done", status
    frames = _frames(serve_apps.get(f"/conclvd/jobs/{job}/video").content, tmp_path)
    assert frames.shape == (2 * CONCLVD["frames"] - 1, 64, 64, 3)  # N -> 2N-1 by SOFP
    assert serve_apps.get(f"/conclvd/jobs/{job}/keyframes").content[:4] == b"\x89PNG"
    assert status["windows"]["done"] == status["windows"]["total"] == 2 and status["windows"]["replicas"]
    STATE["conclvd_done"] = job


def test_conclvd_scroll_job_loops_travels_and_previews(serve_apps, tmp_path):
    """A looping, prompt-travelling scroll in windows: 2N frames, window progress, the latent preview."""
    from inkwalk.provenance import read_metadata

    settings = {**CONCLVD, "frames": 8, "window": 4, "overlap": 1, "loop": True, "size": "96x64",
                "prompts": {"0": "spring mountains", "5": "autumn river"}}
    r = serve_apps.post("/conclvd/jobs", json={"prompt": "hills", "settings": settings})
    assert r.status_code == 202, r.text
    job = r.json()["job_id"]
    assert serve_apps.get(f"/conclvd/jobs/{job}/previews/latest").status_code in (200, 404)
    status = _wait(serve_apps, "conclvd", job, timeout=180)
    assert status["state"] == "done", status
    assert status["windows"]["done"] == status["windows"]["total"] == 3 * 2    # 3 wrapped windows x 2 steps
    preview = serve_apps.get(f"/conclvd/jobs/{job}/previews/latest")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    path = tmp_path / "scroll.mp4"
    path.write_bytes(serve_apps.get(f"/conclvd/jobs/{job}/video").content)
    assert _frames(path.read_bytes(), tmp_path).shape == (16, 64, 96, 3)    # loop: 2N frames
    recorded = read_metadata(path)["settings"]
    assert (recorded["window"], recorded["overlap"], recorded["loop"]) == (4, 1, True)
    assert recorded["prompts"] == {"0": "spring mountains", "5": "autumn river"}


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width`×`height` pixels (a valid IHDR) and holds almost nothing."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _ingress_rss(app_class: str):
    import psutil
    from ray._private.state import actors

    alive = [a for a in actors().values() if a["ActorClassName"].endswith(app_class) and a["State"] == "ALIVE"]
    return psutil.Process(int(alive[0]["Pid"]))


def _chunked(data: bytes):
    """A request body sent with Transfer-Encoding: chunked (no Content-Length)."""
    for i in range(0, len(data), 64 * 1024):
        yield data[i:i + 64 * 1024]


def _multipart(files: list[bytes], boundary: str = "inkwalkboundary") -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="paintings"; filename="p{i}.png"\r\n'
             f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n" for i, data in enumerate(files)]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def test_bad_inputs_get_4xx_with_a_message_and_the_app_keeps_serving(serve_apps):
    import threading

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (230, 230, 3), dtype=np.uint8)  # incompressible: > 150 kB as PNG
    big = _png(noise)
    ok = _paintings(2)
    ingress = _ingress_rss("ArtWalksIngress")
    base, peak, done = ingress.memory_info().rss, [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], ingress.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    walk_cases = [
        ([_png_header(50000, 50000), ok[0]], {}, 413, "pixels"),  # a decompression bomb's header
        ([_png_header(600, 8), ok[0]], {}, 422, "aspect"),  # a thin strip, blown up by cropping
        ([b"GIF89a not really"] + ok[:1], {}, 415, "not an image"),
        ([_png(np.zeros((8, 8, 3), np.uint8), "GIF"), ok[0]], {}, 415, "accepted image types"),
        ([b"%PDF-1.4 hello", ok[0]], {}, 415, "not an image"),
        (ok[:1], {}, 422, "at least 2 paintings"),
        (_paintings(5), {}, 413, "limit is 4"),
        ([big, ok[0]], {}, 413, "limit per painting"),
        ([_png(np.zeros((250, 250, 3), np.uint8)), ok[0]], {}, 413, "pixels"),
        ([b"", ok[0]], {}, 400, "empty"),
        (ok, {"frames": 500}, 422, "'frames'"),
        (ok, {"keyframes": 3}, 422, "'keyframes'"),
        (ok, {"colour": "red"}, 422, "unknown setting 'colour'"),
        (ok, {"interpolator": "film"}, 422, "this app serves interpolator"),
        (ok, {"size": [4000, 4000]}, 422, "exceeds the limit"),
        (ok, {"fit": "stretch"}, 422, "must be one of: crop, letterbox"),
        (ok, {"size": "big"}, 422, "must be WIDTHxHEIGHT"),
        (ok, {"size": None}, 422, "must be WIDTHxHEIGHT"),
        (ok, {"size": 64.5}, 422, "must be WIDTHxHEIGHT"),
        (ok, {"fps": 1000}, 422, "'fps' = 1000"),
        (ok, {"fps": float("inf")}, 422, "Infinity, which is not JSON"),  # refused by safe_json
        (ok, [1, 2], 422, "must be a JSON object"),
        (ok, "not json", 422, "not valid JSON"),
    ]
    for images, settings, code, phrase in walk_cases:
        files = [("paintings", (f"p{i}.png", data, "image/png")) for i, data in enumerate(images)]
        text = settings if isinstance(settings, str) else json.dumps(settings)
        r = serve_apps.post("/artwalks/jobs", files=files, data={"settings": text})
        assert r.status_code == code, (phrase, r.status_code, r.text)
        assert phrase in r.json()["detail"], (phrase, r.text)
    # limits hold while the body streams in: a chunked body (no Content-Length) is cut at the limit
    headers = {"content-type": "multipart/form-data; boundary=inkwalkboundary"}
    t0 = time.time()
    r = serve_apps.post("/artwalks/jobs", content=_chunked(_multipart([b"\x89PNG" + bytes(600_000)])),
                        headers=headers)
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    # a declared size over the limit is refused before any body is sent
    with socket.create_connection(("127.0.0.1", serve_apps.base_url.port), timeout=10) as s:
        s.sendall(b"POST /artwalks/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Content-Length: 500000000\r\n\r\n")
        assert b" 413 " in s.recv(4096).split(b"\r\n")[0]
    assert time.time() - t0 < 10
    r = serve_apps.post("/artwalks/jobs", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 415
    assert list((STATE["store"] / "jobs" / "artwalks").glob("*/inputs/*.tmp-*")) == []  # refused uploads gone
    done.set()
    sampler.join()
    assert (peak[0] - base) / 2**20 < 300, f"the ingress grew {(peak[0] - base) / 2**20:.0f} MiB on refused uploads"

    conclvd_cases = [
        ({"prompt": ""}, 422, "prompt is empty"),
        ({"prompt": "x" * 201}, 422, "limit is 200"),
        ({"prompt": "hills", "settings": {"frames": 50}}, 422, "'frames'"),
        ({"prompt": "hills", "settings": {"size": 60}}, 422, "multiple of 8"),
        ({"prompt": "hills", "settings": {"steps": 0}}, 422, "'steps'"),
        ({"prompt": "hills", "settings": {"guidance": "lots"}}, 422, "'guidance'"),
        ({"prompt": "hills", "settings": {"sampler": "euler"}}, 422, "unknown setting 'sampler'"),
        ({"prompt": "hills", "settings": {"frames": 4, "window": 6}}, 422, "larger than the video's 4 frames"),
        ({"prompt": "hills", "settings": {"frames": 8, "window": 4, "overlap": 4}}, 422, "'overlap' = 4"),
        ({"prompt": "hills", "settings": {"frames": 4, "prompts": {"2": "a", "1": "b"}}}, 422, "comes after"),
        ({"prompt": "hills", "settings": {"frames": 4, "prompts": {"4": "a"}}}, 422, "out of range"),
        ({"prompt": "hills", "settings": {"size": "100x64"}}, 422, "multiple of 8"),
        ({"prompt": "hills", "settings": {"windowing": "motion"}}, 422, "inkwalk t2v PROMPT --windowing motion"),
        ({"prompt": "hills", "settings": {"weighting": "sawtooth"}}, 422, "'weighting' = 'sawtooth': must be one of"),
        ({"prompt": "hills", "settings": {"noise": "perlin"}}, 422, "'noise' = 'perlin': must be one of"),
    ]
    for body, code, phrase in conclvd_cases:
        r = serve_apps.post("/conclvd/jobs", json=body)
        assert r.status_code == code, (phrase, r.status_code, r.text)
        assert phrase in r.json()["detail"], (phrase, r.text)
    assert serve_apps.post("/conclvd/jobs", json={"settings": {}}).status_code == 422  # no prompt
    missing = serve_apps.get("/artwalks/jobs/0123456789abcdef0123456789abcdef")
    assert missing.status_code == 404 and "no artwalks job" in missing.json()["detail"]
    assert serve_apps.get("/artwalks/jobs/" + "a" * 300).status_code == 422  # not an id: never reaches the store
    # the apps still serve the next good request
    r = _submit_walk(serve_apps, ok, {**SMALL_WALK, "keyframes": 0})
    assert r.status_code == 202, r.text
    assert _wait(serve_apps, "artwalks", r.json()["job_id"])["state"] == "done"


def test_a_looping_job_walks_back_to_its_first_painting(serve_apps, tmp_path):
    settings = {**SMALL_WALK, "keyframes": 0, "loop": True}
    r = _submit_walk(serve_apps, _paintings(3, seed=5), settings)
    assert r.status_code == 202, r.text
    status = _wait(serve_apps, "artwalks", r.json()["job_id"])
    assert status["state"] == "done", status
    frames = _frames(serve_apps.get(f"/artwalks/jobs/{status['job_id']}/video").content, tmp_path)
    expected = 3 * 1 * 3 + 1 + 4 * 2  # k walks (m=0, n=2), k+1 holds of round(0.25*8) = 2 frames
    assert status["frames"] == len(frames) == expected and status["settings"]["loop"] is True
    p3 = frames[2 * 5]  # walks of 5 frames (P_i held 3, then 2 between): frame 10 is P_3, held
    assert psnr(frames[0], frames[-1]) > 35 and psnr(frames[-1], p3) < psnr(frames[-1], frames[0]) - 10


def test_a_bad_setting_gets_the_same_refusal_from_the_cli_and_http(serve_apps, tmp_path, capsys):
    """One settings model refuses it on both edges: the same reason, the value named as each user wrote it."""
    from inkwalk.cli import main

    ok = _paintings(2)
    files = [("paintings", (f"p{i}.png", data, "image/png")) for i, data in enumerate(ok)]
    r = serve_apps.post("/artwalks/jobs", files=files, data={"settings": json.dumps({"upscale": "x1000"})})
    assert r.status_code == 422
    http = r.json()["detail"]
    for i, data in enumerate(ok):
        (tmp_path / f"p{i}.png").write_bytes(data)
    code = main(["walk", str(tmp_path / "p0.png"), str(tmp_path / "p1.png"), "-o", str(tmp_path / "w.mp4"),
                 "--preset", "offline", "--upscale", "x1000"])
    cli = capsys.readouterr().err.strip()
    reason = "must be none, xF (a factor, 0 < F <= 8) or WIDTHxHEIGHT"
    assert code == 1 and not (tmp_path / "w.mp4").exists()
    assert http == f"setting 'upscale' = 'x1000': {reason}"
    assert cli == f"inkwalk: error: --upscale x1000: {reason}"


def test_failure_inside_a_deployment_fails_the_job_not_the_replica(serve_apps):
    from ray import serve

    interp = serve.get_deployment_handle("Interpolator", app_name="artwalks")
    with pytest.raises(Exception, match="differ in size"):
        interp.between.remote(np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8), [0.5]).result()
    r = serve_apps.post("/conclvd/jobs", json={"prompt": "hills", "settings": {**CONCLVD, "frames": 2, "size": 8}})
    assert r.status_code == 202, r.text
    status = _wait(serve_apps, "conclvd", r.json()["job_id"], timeout=120)
    assert status["state"] == "failed" and status["error"], status
    assert "Traceback" not in status["error"]
    out = interp.between.remote(np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 200, np.uint8), [0.5]).result()
    assert out.shape == (1, 16, 16, 3)
    # a painting whose header is fine and whose pixels are not: found where it is decoded, never a 500
    r = _submit_walk(serve_apps, _paintings(1) + [_png_header(100, 100)], {**SMALL_WALK, "keyframes": 0})
    assert r.status_code == 202, r.text
    status = _wait(serve_apps, "artwalks", r.json()["job_id"])
    assert status["state"] == "failed" and "truncated or corrupt" in status["error"], status
    assert "p1.png" in status["error"] and "inputs/" not in status["error"], status  # the user's name


def test_concurrent_submissions_complete_or_get_503(serve_apps):
    images = _paintings(2, seed=3)
    settings = {**SMALL_WALK, "keyframes": 0, "frames": 1, "hold": 0}
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda _: _submit_walk(serve_apps, images, settings), range(10)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {202, 503}, codes
    assert 503 in codes and 202 in codes, codes  # 3 active jobs allowed per replica
    for r in responses:
        if r.status_code == 503:
            detail = r.json()["detail"]  # job slots taken, or (services.http_guard) too many uploads arriving
            assert ("overloaded" in detail or "uploads are arriving" in detail) and r.headers.get("retry-after")
    accepted = [r.json()["job_id"] for r in responses if r.status_code == 202]
    assert len(set(accepted)) == len(accepted)
    for job in accepted:
        assert _wait(serve_apps, "artwalks", job)["state"] == "done"


def _replica_actors(app: str, name: str) -> list:
    import ray

    return [ray.get_actor(a["name"], namespace=a["namespace"]) for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith(f"SERVE_REPLICA::{app}#{name}#")]


def test_a_killed_interpolator_replica_fails_no_job(serve_apps):
    import ray

    settings = {**SMALL_WALK, "keyframes": 0, "frames": 8, "hold": 0, "size": [96, 96]}
    jobs = [_submit_walk(serve_apps, _paintings(4, seed=20 + i), settings).json()["job_id"] for i in range(3)]
    deadline = time.time() + 60
    while not any(serve_apps.get(f"/artwalks/jobs/{j}").json()["progress"] > 0 for j in jobs):
        assert time.time() < deadline
        time.sleep(0.1)
    victims = _replica_actors("artwalks", "Interpolator")
    assert len(victims) == 2
    ray.kill(victims[0], no_restart=True)
    for job in jobs:
        status = _wait(serve_apps, "artwalks", job, timeout=180)
        assert status["state"] == "done", status
        assert status["frames"] == 3 * 1 * 9 + 1


def test_cancel_stops_a_job_within_seconds_and_delete_removes_a_finished_one(serve_apps):
    r = serve_apps.post("/conclvd/jobs", json={"prompt": "a slow river", "settings": {**CONCLVD, "steps": 30}})
    job = r.json()["job_id"]
    _wait(serve_apps, "conclvd", job, until=("running",))
    deadline = time.time() + 60
    while serve_apps.get(f"/conclvd/jobs/{job}").json()["progress"] <= 0:  # sampling has begun
        assert time.time() < deadline
        time.sleep(0.1)
    t0 = time.time()
    assert serve_apps.delete(f"/conclvd/jobs/{job}").status_code == 202
    status = _wait(serve_apps, "conclvd", job, timeout=30)
    assert status["state"] == "cancelled" and time.time() - t0 < 10
    # the generator stopped between steps: a new job runs at once instead of queueing behind it
    quick = serve_apps.post("/conclvd/jobs", json={"prompt": "hills", "settings": CONCLVD}).json()["job_id"]
    assert _wait(serve_apps, "conclvd", quick, timeout=120)["state"] == "done"
    assert serve_apps.delete(f"/conclvd/jobs/{quick}").status_code == 204
    assert serve_apps.get(f"/conclvd/jobs/{quick}").status_code == 404
    assert not (STATE["store"] / "jobs" / "conclvd" / quick).exists()


def test_bad_records_concurrent_deletes_and_a_failing_store_get_4xx_or_503_never_500(serve_apps):
    from services.store import JobRecord, JobStore, new_job_id

    store = JobStore(STATE["store"])
    garbage, surrogate = new_job_id(), JobRecord(job_id=new_job_id(), app="conclvd", state="done",
                                                 settings={"prompt": "\ud800"})
    store.put_bytes(store.job_path("conclvd", garbage, "job.json"), b"{not json")
    store.save(surrogate)
    listing = serve_apps.get("/conclvd/jobs")
    assert listing.status_code == 200 and listing.json()["skipped"] == 2, listing.text
    assert serve_apps.get(f"/conclvd/jobs/{garbage}").status_code == 422
    for bad in (garbage, surrogate.job_id):
        assert serve_apps.delete(f"/conclvd/jobs/{bad}").status_code == 204
    assert serve_apps.get("/conclvd/jobs").json()["skipped"] == 0

    job = serve_apps.post("/conclvd/jobs", json={"prompt": "two deletes", "settings": CONCLVD}).json()["job_id"]
    assert _wait(serve_apps, "conclvd", job)["state"] == "done"
    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(lambda _: serve_apps.delete(f"/conclvd/jobs/{job}").status_code, range(4)))
    assert set(codes) <= {204, 404} and 204 in codes, codes

    jobs_dir = STATE["store"] / "jobs" / "conclvd"  # a store that refuses writes there
    moved = jobs_dir.rename(jobs_dir.with_name("conclvd.away"))
    jobs_dir.write_bytes(b"")
    try:
        refused = serve_apps.post("/conclvd/jobs", json={"prompt": "no room", "settings": CONCLVD})
        assert refused.status_code == 503 and "results store" in refused.json()["detail"], refused.text
        assert "\n" not in refused.json()["detail"] and refused.headers["retry-after"]
    finally:
        jobs_dir.unlink()
        moved.rename(jobs_dir)
    assert serve_apps.get("/conclvd/jobs").status_code == 200


def test_a_restarted_ingress_resumes_running_jobs_and_keeps_finished_ones(serve_apps, tmp_path):
    import ray

    settings = {**SMALL_WALK, "keyframes": 0, "frames": 8, "hold": 0, "size": [96, 96]}
    job = _submit_walk(serve_apps, _paintings(4, seed=40), settings).json()["job_id"]
    deadline = time.time() + 60
    while serve_apps.get(f"/artwalks/jobs/{job}").json()["progress"] <= 0:
        assert time.time() < deadline
        time.sleep(0.05)
    ray.kill(_replica_actors("artwalks", "ArtWalksIngress")[0], no_restart=True)
    status = _wait(serve_apps, "artwalks", job, timeout=180)  # Serve starts a new ingress; it takes over
    assert status["state"] == "done" and status["resumed"] >= 1, status
    assert status["frames"] == 3 * 1 * 9 + 1
    assert {"conclvd_done", "artwalks_done"} <= set(STATE), "run the whole module: it checks earlier jobs"
    done = serve_apps.get(f"/conclvd/jobs/{STATE['conclvd_done']}/video")
    assert done.status_code == 200 and len(_frames(done.content, tmp_path)) == 2 * CONCLVD["frames"] - 1
    assert serve_apps.get(f"/artwalks/jobs/{STATE['artwalks_done']}/video").status_code == 200


def test_batch_render_through_the_running_app_reuses_its_chunks(serve_apps, tmp_path):
    from inkwalk.local_render import render_collection_in_process as in_process
    from inkwalk.paintings import collection
    from inkwalk.video import probe, save_image
    from inkwalk.walk_settings import WalkSettings
    from services.collection import render_collection_on_ray

    folder = tmp_path / "paintings"
    for i, p in enumerate(collection(4, size=(80, 64), seed=7)):
        save_image(folder / f"{i:02d}.png", p)
    ws = WalkSettings.model_validate({"preset": "offline", **SMALL_WALK, "keyframes": 0, "frames": 3,
                                 "upscaler": "lanczos"})
    _wait_running("artwalks")  # the ingress killed by the test before may still be being replaced
    first = render_collection_on_ray(folder, tmp_path / "a.mp4", ws)
    expected = 3 * 1 * 4 + 1 + 4 * 2
    assert first.frames == expected and probe(tmp_path / "a.mp4").frames == expected
    assert first.chunks_rendered == 4 and first.chunks_reused == 0
    second = render_collection_on_ray(folder, tmp_path / "b.mp4", ws)
    assert second.chunks_rendered == 0 and second.chunks_reused == 4
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    # the in-process renderer makes the same chunks: every frame identical, seams included
    local = in_process(sorted(folder.iterdir()), tmp_path / "local.mp4", ws, cache_dir=tmp_path / "cache",
                       sheet=False)
    assert local.frames == expected
    assert np.array_equal(_frames((tmp_path / "a.mp4").read_bytes(), tmp_path),
                          _frames((tmp_path / "local.mp4").read_bytes(), tmp_path))
