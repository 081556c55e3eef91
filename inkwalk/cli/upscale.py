"""`inkwalk upscale IN -o OUT`: super-resolve an image or a video to an exact size."""

from __future__ import annotations

import argparse
from pathlib import Path

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("upscale", help="upscale an image or video (Real-ESRGAN or Lanczos)",
                              description="Real-ESRGAN x4plus on overlapping tiles, then Lanczos to the exact "
                                          "size; or Lanczos alone (no weights).")
    p.add_argument("input", help="image or video file")
    p.add_argument("-o", "--output", required=True, help="output image or video")
    p.add_argument("--backend", choices=("realesrgan", "lanczos"), default="realesrgan")
    p.add_argument("--size", metavar="WxH", default=None, help="exact output size (default: 4x the input)")
    p.add_argument("--tile", type=int, default=256, help="tile size in input pixels (256)")
    p.add_argument("--overlap", type=int, default=16, help="context pixels around each tile (16)")
    p.add_argument("--batch", type=int, default=4, help="frames per network call (4)")
    p.add_argument("--models", metavar="DIR", default=None, help="local models folder (else $INKWALK_MODELS)")
    p.add_argument("--device", default=None, help="torch device (default cuda if available, else cpu)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import itertools

    import numpy as np

    from inkwalk.progress import progress
    from inkwalk.upscale import get_upscaler, parse_size
    from inkwalk.video import VideoWriter, iter_frames, probe, read_image, save_image

    src = Path(args.input)
    is_video = src.suffix.lower() in VIDEO_SUFFIXES
    if is_video:
        info = probe(src)
        w, h, fps = info.width, info.height, info.fps or 24.0
    else:
        image = read_image(src)
        h, w = image.shape[:2]
    size = parse_size(args.size) if args.size else (4 * w, 4 * h)
    upscaler = get_upscaler(args.backend, models_dir=args.models, device=args.device, tile=args.tile,
                            overlap=args.overlap, batch_size=args.batch)
    if not is_video:
        save_image(args.output, upscaler.upscale(image, size))
        print(f"{args.output}: {size[0]}x{size[1]}")
        return 0
    frames = iter_frames(src)
    with VideoWriter(args.output, fps) as writer:
        bar = progress(total=info.frames, desc="upscale", unit="frame")
        while batch := list(itertools.islice(frames, args.batch)):
            writer.write_many(upscaler.upscale(np.stack(batch), size))
            bar.update(len(batch))
        bar.close()
    print(f"{args.output}: {writer.frames_written} frames, {size[0]}x{size[1]}")
    return 0
