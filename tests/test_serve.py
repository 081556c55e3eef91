"""Serve end to end over HTTP: both apps from cluster/serve_config.cpu.yaml on the local 2-CPU Ray.

One deployment of both apps per module (tiny models, small limits); the tests run in order
and share it: a finished job from an early test must survive the ingress restart later on.
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

httpx = pytest.importorskip("httpx")

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def serve_apps(ray_session, tiny_models, tmp_path_factory):
    from ray import serve

    from services.apps import apps_from_config

    store = tmp_path_factory.mktemp("results")
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    common = {"store": str(store), "models_dir": str(tiny_models), "heartbeat_timeout_s": 2.0}
    built = apps_from_config(ROOT / "cluster" / "serve_config.cpu.yaml", overrides={
        "artwalks": {**common, "keyframer": "kandinsky",
                     "defaults": {"preset": "offline", "steps": 2},
                     "limits": {"max_paintings": 4, "max_keyframes": 2, "max_frames_per_segment": 8,
                                "max_upload_bytes": 150_000, "max_pixels": 200 * 200, "max_active_jobs": 3}},
        "conclvd": {**common, "limits": {"max_video_frames": 8, "max_steps": 30, "max_size": 128,
                                         "max_prompt_chars": 200, "max_active_jobs": 2}},
    })
    for name, (app, prefix) in built.items():
        serve.run(app, name=name, route_prefix=prefix)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client
    serve.shutdown()


def _wait(client, app: str, job_id: str, timeout: float = 90.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.get(f"/{app}/jobs/{job_id}").json()
        assert 0.0 <= status["progress"] <= 1.0
        if status["state"] in ("done", "failed"):
            return status
        time.sleep(0.3)
    raise AssertionError(f"{app} job {job_id} stuck: {status}")


def _submit_walk(client, images: list[bytes], settings: dict):
    files = [("paintings", (f"p{i}.png", data, "image/png")) for i, data in enumerate(images)]
    return client.post("/artwalks/jobs", files=files, data={"settings": json.dumps(settings)})


def _frames(data: bytes, tmp_path: Path) -> np.ndarray:
    from inkwalk.video import read_frames

    path = tmp_path / "got.mp4"
    path.write_bytes(data)
    return read_frames(path)


def test_artwalks_job_end_to_end(serve_apps, tmp_path):
    r = _submit_walk(serve_apps, _paintings(3), SMALL_WALK)
    assert r.status_code == 202, r.text
    job = r.json()["job_id"]
    status = _wait(serve_apps, "artwalks", job)
    assert status["state"] == "done", status
    assert status["progress"] == 1.0 and status["frames"] == SMALL_WALK_FRAMES_3
    video = serve_apps.get(f"/artwalks/jobs/{job}/video")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    frames = _frames(video.content, tmp_path)
    assert frames.shape == (SMALL_WALK_FRAMES_3, 128, 128, 3)  # 64x64 walk upscaled x2
    sheet = serve_apps.get(f"/artwalks/jobs/{job}/keyframes")
    assert sheet.status_code == 200 and sheet.content[:4] == b"\x89PNG"
    paths = serve_apps.get("/artwalks/openapi.json").json()["paths"]
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/video", "/jobs/{job_id}/keyframes"} <= set(paths)
    STATE["artwalks_done"] = job


def test_conclvd_job_end_to_end(serve_apps, tmp_path):
    r = serve_apps.post("/conclvd/jobs", json={"prompt": "misty mountains over a river", "settings": CONCLVD})
    assert r.status_code == 202, r.text
    job = r.json()["job_id"]
    status = _wait(serve_apps, "conclvd", job, timeout=120)
    assert status["state"] == "done", status
    frames = _frames(serve_apps.get(f"/conclvd/jobs/{job}/video").content, tmp_path)
    assert frames.shape == (2 * CONCLVD["frames"] - 1, 64, 64, 3)  # N -> 2N-1 by SOFP
    STATE["conclvd_done"] = job


def test_bad_inputs_get_4xx_with_a_message_and_the_app_keeps_serving(serve_apps):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (230, 230, 3), dtype=np.uint8)  # incompressible: > 150 kB as PNG
    big = _png(noise)
    ok = _paintings(2)
    walk_cases = [
        ([b"GIF89a not really"] + ok[:1], {}, 415, "accepted image types"),
        ([b"%PDF-1.4 hello", ok[0]], {}, 415, "not an image"),
        (ok[:1], {}, 422, "at least 2 paintings"),
        (_paintings(5), {}, 413, "limit is 4"),
        ([big, ok[0]], {}, 413, "bytes per painting"),
        ([_png(np.zeros((250, 250, 3), np.uint8)), ok[0]], {}, 413, "pixels"),
        (ok, {"frames": 500}, 422, "'frames'"),
        (ok, {"keyframes": 3}, 422, "'keyframes'"),
        (ok, {"colour": "red"}, 422, "unknown ArtWalks setting"),
        (ok, {"interpolator": "film"}, 422, "this app serves interpolator"),
        (ok, {"size": [4000, 4000]}, 422, "exceeds the limit"),
        (ok, {"fit": "stretch"}, 422, "fit must be crop or letterbox"),
        (ok, "not json", 422, "not valid JSON"),
    ]
    for images, settings, code, phrase in walk_cases:
        files = [("paintings", (f"p{i}.png", data, "image/png")) for i, data in enumerate(images)]
        text = settings if isinstance(settings, str) else json.dumps(settings)
        r = serve_apps.post("/artwalks/jobs", files=files, data={"settings": text})
        assert r.status_code == code, (phrase, r.status_code, r.text)
        assert phrase in r.json()["detail"], (phrase, r.text)
    conclvd_cases = [
        ({"prompt": ""}, 422, "prompt is empty"),
        ({"prompt": "x" * 201}, 422, "limit is 200"),
        ({"prompt": "hills", "settings": {"frames": 50}}, 422, "'frames'"),
        ({"prompt": "hills", "settings": {"size": 60}}, 422, "multiple of 8"),
        ({"prompt": "hills", "settings": {"steps": 0}}, 422, "'steps'"),
        ({"prompt": "hills", "settings": {"guidance": "lots"}}, 422, "'guidance'"),
    ]
    for body, code, phrase in conclvd_cases:
        r = serve_apps.post("/conclvd/jobs", json=body)
        assert r.status_code == code, (phrase, r.status_code, r.text)
        assert phrase in r.json()["detail"], (phrase, r.text)
    assert serve_apps.post("/conclvd/jobs", json={"settings": {}}).status_code == 422  # no prompt
    missing = serve_apps.get("/artwalks/jobs/0123abcd")
    assert missing.status_code == 404 and "no artwalks job" in missing.json()["detail"]
    # the apps still serve the next good request
    r = _submit_walk(serve_apps, ok, {**SMALL_WALK, "keyframes": 0})
    assert r.status_code == 202, r.text
    assert _wait(serve_apps, "artwalks", r.json()["job_id"])["state"] == "done"


def test_failure_inside_a_deployment_fails_the_job_not_the_replica(serve_apps):
    from ray import serve

    interp = serve.get_deployment_handle("Interpolator", app_name="artwalks")
    with pytest.raises(Exception, match="differ in size"):
        interp.between.remote(np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8), [0.5]).result()
    # a job whose model call fails is reported failed with the model's reason
    r = serve_apps.post("/conclvd/jobs", json={"prompt": "hills", "settings": {"negative_prompt": 3}})
    assert r.status_code == 422
    r = serve_apps.post("/conclvd/jobs", json={"prompt": "hills", "settings": {**CONCLVD, "frames": 2, "size": 8}})
    assert r.status_code == 202, r.text
    status = _wait(serve_apps, "conclvd", r.json()["job_id"], timeout=120)
    assert status["state"] == "failed" and status["error"], status
    assert "Traceback" not in status["error"]
    # and the replica still answers
    out = interp.between.remote(np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 200, np.uint8), [0.5]).result()
    assert out.shape == (1, 16, 16, 3)


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
            assert "overloaded" in r.json()["detail"] and r.headers.get("retry-after")
    accepted = [r.json()["job_id"] for r in responses if r.status_code == 202]
    assert len(set(accepted)) == len(accepted)
    for job in accepted:
        assert _wait(serve_apps, "artwalks", job)["state"] == "done"


def _ingress_actor(name: str):
    import ray

    for actor in ray.util.list_named_actors(all_namespaces=True):
        if name in actor["name"] and "REPLICA" in actor["name"]:
            return ray.get_actor(actor["name"], namespace=actor["namespace"])
    raise AssertionError(f"no replica actor of {name}")


def test_restarted_ingress_keeps_finished_jobs_and_fails_interrupted_ones(serve_apps, tmp_path):
    import ray

    r = serve_apps.post("/conclvd/jobs", json={"prompt": "a long river", "settings": {**CONCLVD, "steps": 20}})
    assert r.status_code == 202, r.text
    job = r.json()["job_id"]
    deadline = time.time() + 30
    while serve_apps.get(f"/conclvd/jobs/{job}").json()["state"] != "running":
        assert time.time() < deadline
        time.sleep(0.1)
    ray.kill(_ingress_actor("ConCLVDIngress"), no_restart=True)
    deadline = time.time() + 90
    while True:  # Serve starts a new ingress replica; the job's owner is gone
        try:
            status = serve_apps.get(f"/conclvd/jobs/{job}").json()
            if status["state"] == "failed":
                break
        except (httpx.HTTPError, ValueError):
            pass
        assert time.time() < deadline, "interrupted job never reported failed"
        time.sleep(0.5)
    assert "interrupted" in status["error"] and status["resubmittable"] is True
    assert {"conclvd_done", "artwalks_done"} <= set(STATE), "run the whole module: it checks earlier jobs"
    done = serve_apps.get(f"/conclvd/jobs/{STATE['conclvd_done']}/video")
    assert done.status_code == 200
    assert len(_frames(done.content, tmp_path)) == 2 * CONCLVD["frames"] - 1
    assert serve_apps.get(f"/artwalks/jobs/{STATE['artwalks_done']}/video").status_code == 200
    # the interrupted job can be submitted again and completes
    again = serve_apps.post("/conclvd/jobs", json={"prompt": "a long river", "settings": CONCLVD})
    assert again.status_code == 202
    assert _wait(serve_apps, "conclvd", again.json()["job_id"], timeout=120)["state"] == "done"


def test_render_collection_through_the_app_then_reused(serve_apps, tmp_path):
    from inkwalk.paintings import collection
    from inkwalk.video import probe, save_image
    from services.render_collection import render_collection

    folder = tmp_path / "paintings"
    for i, p in enumerate(collection(4, size=(80, 64), seed=7)):
        save_image(folder / f"{i:02d}.png", p)
    settings = {"preset": "offline", **SMALL_WALK, "keyframes": 0, "frames": 3}
    cache = tmp_path / "cache"
    first = render_collection(folder, tmp_path / "a.mp4", settings, cache_dir=cache, mode="serve")
    assert first["mode"] == "serve" and first["walks_rendered"] == 3 and first["walks_reused"] == 0
    expected = 3 * 1 * 4 + 1 + 4 * 2
    assert first["frames"] == expected and probe(tmp_path / "a.mp4").frames == expected
    second = render_collection(folder, tmp_path / "b.mp4", settings, cache_dir=cache, mode="serve")
    assert second["walks_rendered"] == 0 and second["walks_reused"] == 3
    assert probe(tmp_path / "b.mp4").frames == expected
    # the Ray-task pipeline (no app needed) shares the walk cache: nothing to render again
    third = render_collection(folder, tmp_path / "c.mp4", settings, cache_dir=cache, mode="tasks")
    assert third["mode"] == "tasks" and third["walks_reused"] == 3 and third["frames"] == expected


def test_render_collection_as_ray_tasks(serve_apps, tmp_path):
    from inkwalk.paintings import collection
    from inkwalk.video import probe, save_image
    from services.render_collection import main

    folder = tmp_path / "paintings"
    names = []
    for i, p in enumerate(collection(3, size=(72, 64), seed=11)):
        save_image(folder / f"p{i}.png", p)
        names.append(f"p{i}.png")
    (folder / "walk.txt").write_text("\n".join(reversed(names)) + "\n")  # a manifest sets the order
    settings = json.dumps({"preset": "offline", "frames": 2, "size": [64, 64], "fps": 8, "upscale": "none"})
    args = [str(folder / "walk.txt"), "-o", str(tmp_path / "t.mp4"), "--settings", settings,
            "--cache", str(tmp_path / "cache"), "--mode", "tasks", "--task-cpus", "0.25"]
    assert main(args) == 0
    assert probe(tmp_path / "t.mp4").frames == 2 * 1 * 3 + 1
    assert main([str(folder / "missing"), "-o", str(tmp_path / "x.mp4")]) == 1  # one-line error, no traceback
