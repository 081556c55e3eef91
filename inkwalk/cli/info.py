"""`inkwalk info FILE`: what a video (or image) is, without decoding all of it."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="show a video's size, frames, fps and codec (or an image's size)")
    p.add_argument("file", help="a video or image file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inkwalk import video

    try:
        info = video.probe(args.file)
    except video.MediaError as exc:
        if exc.reason != "is a still image, not a video":
            raise
        frame = video.read_image(args.file)
        print(f"{args.file}: image {frame.shape[1]}×{frame.shape[0]}")
        return 0
    print(f"{info.path}: {info.width}×{info.height}, {info.frames} frames, {info.fps:g} fps, "
          f"{info.duration_s:.2f} s, codec {info.codec}")
    return 0
