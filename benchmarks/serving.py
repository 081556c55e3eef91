"""Serving overhead and interpolator scaling, measured in one run on the local machine.

    python -m benchmarks.serving [--size 256] [--frames 24] [--repeats 3]

1. The same ArtWalks job (3 paintings, offline preset) rendered in-process (the pipeline on
   the deployment classes, no Ray) and as an HTTP job (submit, poll every 0.1 s, download the
   mp4) against the `artwalks` app of cluster/serve_config.cpu.yaml: overhead ratio.
2. An 8-painting collection through the app (`services.render_collection --mode serve`) with
   1 and with 2 Interpolator replicas (fresh walk cache each time).

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_process(images: list[np.ndarray], settings: dict, out: Path) -> float:
    """The pipeline of a job, in this process: same classes, same walk code, no Serve."""
    from services.pipeline import LocalStages, render_artwalk, walk_settings

    stages = LocalStages.for_artwalks(keyframer="none", interpolator={"method": "flow-warp", "flow": "dis"},
                                      upscaler={"backend": "lanczos"})
    ws = walk_settings({**settings, "keyframer": "none", "interpolator": "flow-warp", "flow": "dis",
                        "upscaler": "lanczos"})
    t0 = time.perf_counter()
    asyncio.run(render_artwalk(stages, images, ws, out))
    return time.perf_counter() - t0


def http_job(client, images: list[bytes], settings: dict) -> tuple[float, int]:
    """Submit, poll, download; returns (seconds, bytes of the mp4)."""
    t0 = time.perf_counter()
    files = [("paintings", (f"p{i}.png", data, "image/png")) for i, data in enumerate(images)]
    r = client.post("/artwalks/jobs", files=files, data={"settings": json.dumps(settings)})
    r.raise_for_status()
    job = r.json()["job_id"]
    while True:
        status = client.get(f"/artwalks/jobs/{job}").json()
        if status["state"] in ("done", "failed"):
            break
        time.sleep(0.1)
    if status["state"] != "done":
        raise RuntimeError(status["error"])
    video = client.get(f"/artwalks/jobs/{job}/video").content
    return time.perf_counter() - t0, len(video)


def deploy(store: Path, port_client, interp_replicas: int | None = None) -> None:
    from ray import serve

    from services.apps import apps_from_config

    overrides = {"artwalks": {"store": str(store)}}
    if interp_replicas:
        overrides["artwalks"]["deployment_options"] = {
            "Interpolator": {"autoscaling_config": None, "num_replicas": interp_replicas}}
    app, prefix = apps_from_config(ROOT / "cluster" / "serve_config.cpu.yaml", overrides)["artwalks"]
    serve.run(app, name="artwalks", route_prefix=prefix)


def main() -> None:
    import httpx
    import ray
    from ray import serve

    from inkwalk.paintings import collection
    from inkwalk.video import save_image
    from services.render_collection import render_collection

    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = {"preset": "offline", "size": [args.size, args.size], "frames": args.frames, "fps": 24,
                "upscale": "x2"}
    paintings = collection(3, size=(args.size + 64, args.size), seed=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    rows = []
    with tempfile.TemporaryDirectory() as tmp, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
        tmp = Path(tmp)
        deploy(tmp / "store", client)
        http_job(client, [_png(p) for p in paintings], settings)  # warm-up: first handle calls
        local, remote = [], []
        for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
            local.append(in_process(paintings, settings, tmp / "local.mp4"))
            remote.append(http_job(client, [_png(p) for p in paintings], settings)[0])
        lm, rm = statistics.median(local), statistics.median(remote)
        rows.append(("3 paintings, in-process pipeline (median)", f"{lm:.2f} s", "1.00"))
        rows.append(("3 paintings, HTTP job: submit+poll+download (median)", f"{rm:.2f} s", f"{rm / lm:.2f}"))
        rows.append(("HTTP overhead (median difference)", f"{rm - lm:+.2f} s", ""))

        folder = tmp / "eight"
        for i, p in enumerate(collection(8, size=(args.size + 64, args.size), seed=2)):
            save_image(folder / f"{i:02d}.png", p)
        times = {}
        for replicas in (1, 2):
            deploy(tmp / "store", client, interp_replicas=replicas)
            t0 = time.perf_counter()
            summary = render_collection(folder, tmp / f"eight-{replicas}.mp4", settings,
                                        cache_dir=tmp / f"cache-{replicas}", mode="serve")
            times[replicas] = time.perf_counter() - t0
            assert summary["walks_rendered"] == 7
        rows.append(("8 paintings (7 walks) via app, 1 Interpolator replica", f"{times[1]:.2f} s", "1.00"))
        rows.append(("8 paintings (7 walks) via app, 2 Interpolator replicas", f"{times[2]:.2f} s",
                     f"{times[2] / times[1]:.2f}"))
    serve.shutdown()
    ray.shutdown()
    print(f"\nsettings: {json.dumps(settings)}; repeats: {args.repeats}\n")
    print("| case | wall time | ratio |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
