"""Render a whole collection of paintings into one walk video on Ray.

    python -m services.render_collection FOLDER_OR_MANIFEST -o out.mp4 [--settings JSON]

Every walk ``P_i -> P_(i+1)`` renders in parallel. When the `artwalks` Serve app is running
on the cluster, walks go through its deployments (the backends are the app's); otherwise
each walk is a Ray task running the same ArtWalks pipeline in-process. Walks already in the
walk cache (same paintings, same settings) are reused, not rendered again; both modes share
the cache of the `inkwalk` CLI. A manifest is a text file with one image path per line
(relative to the manifest) or a JSON list of paths.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from inkwalk.errors import InkwalkError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def collection_paths(source: str | Path) -> list[Path]:
    """Painting files of a folder (sorted by name) or a manifest (in its order)."""
    src = Path(source)
    if src.is_dir():
        paths = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif src.is_file():
        text = src.read_text()
        if src.suffix.lower() == ".json":
            try:
                entries = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InkwalkError(f"{src}: not a JSON list of image paths ({exc})") from None
            if not isinstance(entries, list):
                raise InkwalkError(f"{src}: a JSON manifest must be a list of image paths")
        else:
            entries = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        paths = [p if p.is_absolute() else src.parent / p for p in map(Path, entries)]
    else:
        raise InkwalkError(f"{src}: no such folder or manifest file")
    if len(paths) < 2:
        raise InkwalkError(f"{src}: a collection needs at least 2 paintings, found {len(paths)} "
                           f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths


def _walk_task(a: np.ndarray, b: np.ndarray, settings, cache_dir: str, models_dir: str | None):
    """One walk as a Ray task: the in-process ArtWalks pipeline, into the shared walk cache."""
    from inkwalk.artwalks import load_walk_models, render_walk_cached

    models = load_walk_models(settings, models_dir=models_dir)
    return render_walk_cached(a, b, settings, models, cache_dir, models_dir=models_dir)


def render_with_tasks(fitted: Sequence[np.ndarray], settings, cache_dir: Path, models_dir: str | None,
                      num_cpus: float, bar) -> list:
    """Every walk as a Ray task (the fallback when no app is running); returns CachedWalks in order."""
    import ray

    from inkwalk.artwalks import walk_cache_key

    task = ray.remote(num_cpus=num_cpus)(_walk_task)
    walks: list = [None] * (len(fitted) - 1)
    pending = {}
    for i in range(len(fitted) - 1):
        key = walk_cache_key(fitted[i], fitted[i + 1], settings, models_dir)
        if (cache_dir / f"{key}.mp4").exists() and (cache_dir / f"{key}.npz").exists():
            from inkwalk.artwalks import CachedWalk

            walks[i] = CachedWalk(key, cache_dir / f"{key}.mp4", cache_dir / f"{key}.npz", reused=True)
            bar.update(1)
            continue
        pending[task.remote(fitted[i], fitted[i + 1], settings, str(cache_dir), models_dir)] = i
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(ready[0])
        try:
            walks[i] = ray.get(ready[0])
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            raise InkwalkError(f"walk {i + 1} failed: {cause or exc}") from None
        bar.update(1)
    return walks


def serve_handles(app: str):
    """Deployment handles of a running `app`, or None when it is not running."""
    from ray import serve

    try:
        status = serve.status().applications.get(app)
    except Exception:
        return None
    if status is None or str(getattr(status.status, "value", status.status)) != "RUNNING":
        return None
    return {name: serve.get_deployment_handle(name, app_name=app) for name in ("Keyframes", "Interpolator",
                                                                             "Upscaler")}


def render_with_serve(fitted: Sequence[np.ndarray], settings, cache_dir: Path, models_dir: str | None,
                      handles: dict, bar) -> list:
    """Every walk through the app's deployments, concurrently; returns CachedWalks in order."""
    from services.pipeline import HandleStages, render_walk

    async def main():
        stages = HandleStages(handles["Keyframes"], handles["Interpolator"], handles["Upscaler"],
                              max_inflight=4 * len(fitted))

        async def walk(i: int):
            result = await render_walk(stages, fitted[i], fitted[i + 1], settings, cache_dir, models_dir)
            bar.update(1)
            return result

        return await asyncio.gather(*(walk(i) for i in range(len(fitted) - 1)))

    return asyncio.run(main())


def served_settings(handles: dict, user: dict):
    """WalkSettings with the app's backends (refusing a request for a different one)."""
    from services.pipeline import walk_settings

    served: dict = {}
    for name in ("Keyframes", "Interpolator", "Upscaler"):
        served.update(handles[name].describe.remote().result())
    for key, value in served.items():
        if key in user and user[key] != value:
            raise InkwalkError(f"the running app serves {key} {value!r}, not {user[key]!r}: leave it out, "
                               f"or use --mode tasks")
    return walk_settings({**user, **served})


def render_collection(source: str | Path, out: str | Path, settings: dict, cache_dir: str | Path | None = None,
                      models_dir: str | None = None, mode: str = "auto", app: str = "artwalks",
                      task_cpus: float = 0.5) -> dict:
    """Render a collection into `out`; returns a summary (frames, walks rendered/reused, mode, seconds)."""
    import ray

    from inkwalk.artwalks import assemble, default_cache_dir, prepare_painting
    from inkwalk.progress import progress
    from inkwalk.video import read_image
    from services.pipeline import walk_settings

    t0 = time.perf_counter()
    paths = collection_paths(source)
    if not ray.is_initialized():
        ray.init(address="auto" if mode != "tasks" and _cluster_running() else None, log_to_driver=False)
    handles = serve_handles(app) if mode in ("auto", "serve") else None
    if mode == "serve" and handles is None:
        raise InkwalkError(f"no running Serve app {app!r}: deploy cluster/serve_config*.yaml or use --mode tasks")
    ws = served_settings(handles, settings) if handles else walk_settings(settings)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    fitted = [prepare_painting(read_image(p), ws) for p in paths]
    with progress(total=len(fitted) - 1, desc="walks", unit="walk") as bar:
        if handles:
            walks = render_with_serve(fitted, ws, cache, models_dir, handles, bar)
        else:
            walks = render_with_tasks(fitted, ws, cache, models_dir, task_cpus, bar)
    frames = assemble(walks, out, ws)
    return {"out": str(out), "frames": frames, "paintings": len(paths),
            "walks_rendered": sum(not w.reused for w in walks), "walks_reused": sum(w.reused for w in walks),
            "mode": "serve" if handles else "tasks", "seconds": round(time.perf_counter() - t0, 2)}


def _cluster_running() -> bool:
    """True when a Ray cluster was started on this machine (`ray start`)."""
    import ray._private.services as services

    try:
        return bool(services.find_gcs_addresses())
    except Exception:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.render_collection", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="folder of paintings (sorted by name) or manifest (.txt lines / .json list)")
    parser.add_argument("-o", "--out", required=True, help="output mp4")
    parser.add_argument("--settings", default="{}", help='WalkSettings as JSON, e.g. \'{"preset": "offline"}\'')
    parser.add_argument("--cache", default=None, help="walk cache folder (default: INKWALK_CACHE or ~/.cache/inkwalk/walks)")
    parser.add_argument("--models", default=None, help="models folder (default: INKWALK_MODELS)")
    parser.add_argument("--mode", choices=("auto", "serve", "tasks"), default="auto",
                        help="serve: through the running app; tasks: Ray tasks; auto: serve when running")
    parser.add_argument("--app", default="artwalks", help="name of the ArtWalks Serve app")
    parser.add_argument("--task-cpus", type=float, default=0.5, help="CPUs per walk task (fractional is fine)")
    args = parser.parse_args(argv)
    try:
        try:
            settings = json.loads(args.settings)
        except json.JSONDecodeError as exc:
            raise InkwalkError(f"--settings is not valid JSON ({exc})") from None
        summary = render_collection(args.source, args.out, settings, cache_dir=args.cache, models_dir=args.models,
                                    mode=args.mode, app=args.app, task_cpus=args.task_cpus)
    except InkwalkError as exc:
        print(f"render_collection: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
