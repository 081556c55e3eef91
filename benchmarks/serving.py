"""The segment path on a local Ray: memory of the ingress and the driver, time, batching.

    python -m benchmarks.serving [--quick] [--out docs/serving-benchmark.json]

Every number is measured in this one run, on the `artwalks` app of the CPU Serve config
(offline preset: flow-warp + DIS, Lanczos), fresh stores so nothing is reused:

1. **Ingress memory**: peak RSS growth of the ingress replica (sampled every 20 ms) over its
   RSS before the job, for 2, 6 and 12 paintings at 512² and 1024² output, and 2 paintings at
   2048²; beside it, the bytes of one piece's upscaled frames (what a design that routes frames
   through the ingress would hold at least).
2. **Driver memory**: the same for `inkwalk render`'s driver (`services.collection`, a subprocess
   using the running app), 2 and 12 paintings at 1024².
3. **Time**: one collection through HTTP (submit, poll, download) vs the in-process renderer
   (`inkwalk.local_render.render_collection_in_process`, models loaded before timing), both making the
   video and its contact sheet, interleaved, median; and where the Serve job's render went
   (`benchmarks.serve_profile`, from Serve's request logs).
4. **Batching**: 1 and 4 concurrent jobs, with the deployments' `serve.batch` on (max 4) and off
   (max 1): jobs per minute.

Prints a markdown table and writes the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.serve_profile import breakdown, job_calls, markdown

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {"preset": "offline", "keyframes": 0, "upscaler": "lanczos", "hold": 0.25, "fps": 24}


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeakRSS:
    """Peak resident memory of a process while the block runs, sampled in a thread."""

    def __init__(self, pid: int, every_s: float = 0.02):
        import psutil

        self.proc, self.every_s = psutil.Process(pid), every_s
        self.base = self.peak = self.proc.memory_info().rss

    def __enter__(self) -> "PeakRSS":
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except Exception:  # the process ended
                return
            time.sleep(self.every_s)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.base) / 2**20


class App:
    """The artwalks app of the CPU config on a private local Ray, with a fresh store."""

    port = 0
    ray_dir = ""

    def __init__(self, work: Path, batch: int = 1, upscaler: str = "lanczos"):
        import httpx
        import ray
        from ray import serve

        from services.apps import apps_from_config

        if not ray.is_initialized():
            App.ray_dir = tempfile.mkdtemp(prefix="rbs", dir="/tmp")
            ray.init(address="local", _temp_dir=App.ray_dir,
                     include_dashboard=False, log_to_driver=False, object_store_memory=2_000_000_000)
            App.port = _free_port()
            serve.start(http_options={"host": "127.0.0.1", "port": App.port})
        self.store = work / f"store-{time.time_ns()}"
        limits = {"max_paintings": 16, "max_output_pixels": 2048 * 2048, "max_pixels": 40_000_000,
                  "max_active_jobs": 8, "max_frames_per_segment": 128}
        batching = {"batch": {"max_batch_size": batch, "batch_wait_timeout_s": 0.05}}
        room = {"max_ongoing_requests": max(2, 2 * batch)}  # a replica must hold a batch's requests
        app, prefix = apps_from_config(ROOT / "cluster" / "serve_config.cpu.yaml", {"artwalks": {
            "store": str(self.store), "limits": limits, "interpolator": {"method": "flow-warp", "flow": "dis", **batching},
            "upscaler": {"backend": upscaler, **batching},
            "deployment_options": {"Interpolator": room, "Upscaler": room}}})["artwalks"]
        serve.run(app, name="artwalks", route_prefix=prefix)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{App.port}", timeout=120)

    def ingress_pid(self) -> int:
        """The ingress replica's process, from this Ray's own actor table (no dashboard needed)."""
        from ray._private.state import actors

        alive = [a for a in actors().values() if a["ActorClassName"].endswith("ArtWalksIngress")
                 and a["State"] == "ALIVE"]
        return int(alive[0]["Pid"])

    def job(self, images: list[bytes], settings: dict) -> float:
        """Submit, poll every 0.1 s, download; returns seconds. `self.parts` says where they went:
        the POST (upload, checks, record), the render (the record's started_at to finished_at),
        what the poll saw after that, and the download; `self.inside` where the render's went
        (`benchmarks.serve_profile`)."""
        t0, wall0 = time.perf_counter(), time.time()
        files = [("paintings", (f"p{i}.png", d, "image/png")) for i, d in enumerate(images)]
        r = self.client.post("/artwalks/jobs", files=files, data={"settings": json.dumps(settings)})
        r.raise_for_status()
        posted = time.perf_counter() - t0
        job = r.json()["job_id"]
        while (status := self.client.get(f"/artwalks/jobs/{job}").json())["state"] not in ("done", "failed"):
            time.sleep(0.1)
        seen = time.perf_counter() - t0
        if status["state"] != "done":
            raise RuntimeError(status["error"])
        with self.client.stream("GET", f"/artwalks/jobs/{job}/video") as video:
            if sum(len(b) for b in video.iter_bytes()) == 0:
                raise RuntimeError(f"job {job}: empty video")
        total = time.perf_counter() - t0
        calls = job_calls(Path(App.ray_dir) / "session_latest", r.headers["x-request-id"])
        self.inside = breakdown(calls, status["started_at"], status["finished_at"])
        self.parts = {"post_s": posted, "queued_s": status["started_at"] - status["created_at"],
                      "render_s": status["finished_at"] - status["started_at"],
                      "poll_lag_s": wall0 + seen - status["finished_at"], "download_s": total - seen}
        return total


def paintings(k: int, seed: int = 0) -> list[bytes]:
    from inkwalk.paintings import collection

    return [_png(p) for p in collection(k, size=(320, 240), seed=seed)]


def piece_mib(settings: dict) -> float:
    from inkwalk.segments import piece_frame_limit
    from inkwalk.walk_settings import WalkSettings

    ws = WalkSettings.model_validate(settings)
    w, h = ws.output_size
    return min(piece_frame_limit(ws), ws.frames + 1) * w * h * 3 / 2**20


def memory(app: App, quick: bool) -> list[dict]:
    cases = [(2, 256), (6, 256), (12, 256), (2, 512), (6, 512), (12, 512), (2, 1024)]
    if quick:
        cases = [(2, 256), (6, 256), (2, 512), (6, 512), (2, 1024)]
    rows = []
    pid = app.ingress_pid()
    app.job(paintings(2, seed=99), {**OFFLINE, "frames": 2, "size": [64, 64], "upscale": "x2"})  # warm
    for k, size in cases:
        settings = {**OFFLINE, "frames": 8 if size < 1024 else 2, "size": [size, size], "upscale": "x2"}
        with PeakRSS(pid) as rss:
            seconds = app.job(paintings(k, seed=k * 1000 + size), settings)
        rows.append({"who": "ingress", "paintings": k, "output": 2 * size, "growth_mib": round(rss.growth_mib, 1),
                     "piece_mib": round(piece_mib(settings), 1), "seconds": round(seconds, 2)})
        print(rows[-1], flush=True)
    return rows


def driver_memory(app: App, work: Path, quick: bool) -> list[dict]:
    """`inkwalk render`'s driver against the running app, in a subprocess: its peak RSS."""
    import ray

    from inkwalk.paintings import collection
    from inkwalk.video import save_image

    rows = []
    for k in ((2, 6) if quick else (2, 12)):
        folder = work / f"driver-{k}"
        for i, p in enumerate(collection(k, size=(320, 240), seed=500 + k)):
            save_image(folder / f"{i:02d}.png", p)
        cmd = [sys.executable, "-m", "inkwalk.cli", "render", str(folder), "-o", str(folder / "out.mp4"),
               "--preset", "offline", "--size", "512x512", "--upscale", "x2", "--upscaler", "lanczos",
               "--frames", "8", "--fps", "24", "--address", ray.get_runtime_context().gcs_address]
        env = {**os.environ, "INKWALK_NO_PROGRESS": "1", "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with PeakRSS(proc.pid) as rss:
            while proc.poll() is None:
                time.sleep(0.05)
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(err[-2000:])
        rows.append({"who": "driver", "paintings": k, "output": 1024, "peak_mib": round(rss.peak / 2**20, 1),
                     "piece_mib": round(piece_mib({**OFFLINE, "frames": 8, "size": [512, 512], "upscale": "x2"}), 1),
                     "seconds": round(time.perf_counter() - t0, 2)})
        print(rows[-1], flush=True)
    return rows


TIMING_JOBS = ((6, 256), (7, 384), (8, 512))  # ~2, ~5 and ~10 s in process on the 2-core machine


def timing(app: App, work: Path, repeats: int) -> list[dict]:
    """HTTP job vs the in-process renderer on the same collection (fresh stores), interleaved, after
    one untimed job of each size (replicas scaled up, models loaded: both sides warm).

    Both make what a user gets by default: the video and its contact sheet (`inkwalk walk`, `inkwalk
    render` and a Serve job all write the sheet). Prints where each size's median Serve render went.
    """
    from inkwalk.artwalks import load_walk_models
    from inkwalk.local_render import render_collection_in_process
    from inkwalk.walk_settings import WalkSettings

    rows, profiles = [], []
    for k, size in TIMING_JOBS:
        settings = {**OFFLINE, "frames": 24, "size": [size, size], "upscale": "x2", "flow": "dis",
                    "interpolator": "flow-warp"}
        ws = WalkSettings.model_validate(settings)
        models = load_walk_models(ws)
        app.job(paintings(k, seed=600 + k), settings)  # warm: the autoscaler's replicas start here
        serve_s, local_s, parts, inside = [], [], [], []
        for r in range(repeats):
            images = paintings(k, seed=700 + 10 * k + r)  # new paintings each time: nothing is reused
            files = []
            for i, data in enumerate(images):
                (work / f"t{k}-{r}-{i}.png").write_bytes(data)
                files.append(work / f"t{k}-{r}-{i}.png")
            t0 = time.perf_counter()
            render_collection_in_process(files, work / f"local{k}-{r}.mp4", ws, cache_dir=work / f"local-store-{k}-{r}",
                                         models=models)
            local_s.append(time.perf_counter() - t0)
            serve_s.append(app.job(images, settings))
            parts.append(app.parts)
            inside.append(app.inside)
        serve, local = statistics.median(serve_s), statistics.median(local_s)
        rows.append({"paintings": k, "output": 2 * size, "in_process_s": round(local, 2), "serve_s": round(serve, 2),
                     "fixed_s": round(serve - local, 3), "ratio": round(serve / local, 3),
                     **{k: round(statistics.median(p[k] for p in parts), 3) for k in parts[0]}})
        median_job = inside[serve_s.index(sorted(serve_s)[len(serve_s) // 2])]
        profiles.append((f"{k} x {size}² -> {2 * size}²", median_job))
        print(rows[-1], flush=True)
    print("\n| job | in-process | Serve | ratio | Serve - in-process | POST | queued | render | poll lag | download |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['paintings']} paintings, {row['output'] // 2}² -> {row['output']}² | {row['in_process_s']:.2f} s "
              f"| {row['serve_s']:.2f} s | {row['ratio']:.2f}x | {row['fixed_s']:.2f} s | {row['post_s']:.3f} s "
              f"| {row['queued_s']:.3f} s | {row['render_s']:.2f} s | {row['poll_lag_s']:.3f} s "
              f"| {row['download_s']:.3f} s |")
    print("\nInside the median Serve render of each size (benchmarks/serve_profile.py):\n")
    print(markdown(profiles), flush=True)
    return rows


def throughput(work: Path, quick: bool) -> list[dict]:
    """Jobs per minute with `serve.batch` off and on, with the learned compact upscaler: batching
    only pays where one call of a network over more frames costs less than several calls."""
    rows = []
    settings = {**OFFLINE, "frames": 6, "size": [96, 96], "upscale": "x2", "upscaler": "realesrgan-compact"}
    for batch in (1, 4):
        app = App(work, batch=batch, upscaler="realesrgan-compact")
        for jobs in (1, 4):
            sets = [paintings(3, seed=10_000 * batch + 100 * jobs + j) for j in range(jobs)]
            t0 = time.perf_counter()
            with ThreadPoolExecutor(jobs) as pool:
                list(pool.map(lambda images: app.job(images, settings), sets))
            seconds = time.perf_counter() - t0
            rows.append({"batch": batch, "jobs": jobs, "seconds": round(seconds, 2),
                         "jobs_per_min": round(60 * jobs / seconds, 2)})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases (a smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the raw numbers here (JSON)")
    parser.add_argument("--only", choices=("memory", "driver", "timing", "throughput"), default=None,
                        help="run one part")
    args = parser.parse_args()
    os.environ.setdefault("INKWALK_NO_PROGRESS", "1")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="inkwalk-bench-") as tmp:
        work = Path(tmp)
        part = lambda name: args.only in (None, name)  # noqa: E731
        result = {"load_average_1min_at_start": load}
        app = App(work) if args.only != "throughput" else None
        if part("memory"):
            result["memory"] = memory(app, args.quick)
        if part("driver"):
            result["driver"] = driver_memory(app, work, args.quick)
        if part("timing"):
            result["timing"] = timing(app, work, 1 if args.quick else args.repeats)
        if part("throughput"):
            result["throughput"] = throughput(work, args.quick)
    result["load_average_1min_at_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
