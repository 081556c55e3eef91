"""ArtWalks benchmark: models loaded once vs one process per walk, and memory vs collection length.

    python -m benchmarks.artwalks            # markdown tables on stdout

1. A 10-painting collection (9 walks), offline preset and paper preset on tiny random models:
   seconds per walk when `render_collection_in_process` loads the models once for the whole collection,
   vs the authors' release, which runs one process per pair of paintings (each loads every
   model again); here each pair is an `inkwalk walk A B` subprocess.
2. Peak resident memory of a 2-walk and a 20-walk collection (offline preset), each measured
   in its own process: walks stream through the encoder, so it should not grow.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OFFLINE = dict(preset="offline", size=(256, 160), frames=12)
TINY_PAPER = dict(preset="paper", size=(32, 32), keyframes=2, frames=2, steps=1, upscale="x2")


def _settings(spec: dict):
    from inkwalk.walk_settings import WalkSettings

    return WalkSettings.model_validate(spec)


def _cli_args(spec: dict) -> list[str]:
    s = _settings(spec)
    args = ["--preset", s.preset, "--size", f"{s.size[0]}x{s.size[1]}", "-n", str(s.frames), "-m", str(s.keyframes),
            "--upscale", s.upscale, "--no-sheet"]
    if s.keyframes:
        args += ["--steps", str(s.steps)]
    return args


def _write_paintings(folder: Path, count: int) -> list[Path]:
    from inkwalk.paintings import collection
    from inkwalk.video import save_image

    return [save_image(folder / f"p{i:02d}.png", img) for i, img in enumerate(collection(count, (320, 200)))]


def once_vs_per_walk(spec: dict, paths: list[Path], models_dir: Path | None, work: Path) -> dict:
    """Seconds per walk: one process with models loaded once vs one subprocess per pair."""
    from inkwalk.artwalks import load_walk_models
    from inkwalk.local_render import render_collection_in_process

    settings = _settings(spec)
    start = time.perf_counter()
    models = load_walk_models(settings, models_dir=models_dir, device="cpu")
    result = render_collection_in_process(paths, work / "once.mp4", settings, cache_dir=work / "cache-once",
                                          models_dir=models_dir, models=models, sheet=False)
    once = time.perf_counter() - start
    assert result.walks_rendered == len(paths) - 1
    env = dict(os.environ, INKWALK_NO_PROGRESS="1", HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    for i, (a, b) in enumerate(zip(paths[:-1], paths[1:])):
        cmd = [sys.executable, "-m", "inkwalk.cli", "walk", str(a), str(b), "-o", str(work / f"pair{i}.mp4"),
               "--store", str(work / "cache-pairs"), *_cli_args(spec)]
        if models_dir:
            cmd += ["--models", str(models_dir), "--device", "cpu"]
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    per_pair = time.perf_counter() - start
    walks = len(paths) - 1
    return {"walks": walks, "once_s": once / walks, "per_walk_process_s": per_pair / walks,
            "ratio": per_pair / once}


def peak_rss_mib(walks: int) -> float:
    """Peak RSS (MiB) of a fresh process rendering a `walks`-walk offline collection."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.artwalks", "--peak", str(walks)], check=True,
                         capture_output=True, text=True, env=dict(os.environ, INKWALK_NO_PROGRESS="1"))
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def _peak_child(walks: int) -> None:
    from inkwalk.local_render import render_collection_in_process
    from inkwalk.paintings import collection

    settings = _settings(dict(OFFLINE, size=(640, 400), frames=24))
    with tempfile.TemporaryDirectory() as tmp:
        result = render_collection_in_process(collection(walks + 1, (640, 400)), Path(tmp) / "c.mp4", settings,
                                              cache_dir=Path(tmp) / "cache", sheet=False)
        print(json.dumps({"frames": result.frames,
                          "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peak", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak is not None:
        _peak_child(args.peak)
        return
    os.environ.setdefault("INKWALK_NO_PROGRESS", "1")
    from inkwalk.tiny_models import make_tiny

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = _write_paintings(tmp / "paintings", 10)
        make_tiny(tmp / "tiny")
        rows = []
        for name, spec, mdir in [("offline (flow-warp DIS, 256x160, n=12)", OFFLINE, None),
                                 ("paper, tiny models (32x32 -> x2, m=2, n=2, 1 step)", TINY_PAPER, tmp / "tiny")]:
            work = tmp / spec["preset"]
            work.mkdir()
            r = once_vs_per_walk(spec, paths, mdir, work)
            rows.append(f"| {name} | {r['walks']} | {r['once_s']:.2f} | {r['per_walk_process_s']:.2f} | "
                        f"{r['ratio']:.1f}x |")
    print("| preset | walks | s/walk, models loaded once | s/walk, one process per walk | ratio |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    two, twenty = peak_rss_mib(2), peak_rss_mib(20)
    print("| collection (offline, 640x400, n=24) | peak RSS (MiB) |")
    print("|---|---|")
    print(f"| 2 walks | {two:.0f} |")
    print(f"| 20 walks | {twenty:.0f} |")
    print(f"| ratio 20/2 | {twenty / two:.2f} |")


if __name__ == "__main__":
    main()
