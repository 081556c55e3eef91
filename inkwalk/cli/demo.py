"""`inkwalk demo -o demo.mp4`: a walk between two paintings the project draws itself, no weights."""

from __future__ import annotations

import argparse
import tempfile
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="render a demo walk between two drawn ink-wash paintings (offline, no weights)",
        description="Draws two ink-wash paintings (mountains in mist, a river scene) and renders the "
                    "offline ArtWalks preset between them: flow-warp with OpenCV DIS, no keyframes.")
    p.add_argument("-o", "--output", default="demo.mp4", metavar="OUT.mp4", help="output video (demo.mp4)")
    p.add_argument("--size", metavar="WxH", default="640x400", help="video size (640x400)")
    p.add_argument("-n", "--frames", type=int, default=46, help="frames between the two paintings (46)")
    p.add_argument("--hold", type=float, default=1.0, help="seconds each painting stays still (1)")
    p.add_argument("--fps", type=float, default=24.0, help="frames per second (24)")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn paintings (0)")
    p.add_argument("--save-paintings", action="store_true",
                   help="also write the two paintings next to the video (<out>.a.png, <out>.b.png)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from pathlib import Path

    from inkwalk.artwalks import WalkSettings, render_collection
    from inkwalk.paintings import draw
    from inkwalk.upscale import parse_size
    from inkwalk.video import save_image

    start = time.perf_counter()
    size = parse_size(args.size)
    settings = WalkSettings.with_preset("offline", size=size, frames=args.frames, hold=args.hold, fps=args.fps)
    paintings = [draw("mountains", size, args.seed), draw("river", size, args.seed)]
    out = Path(args.output)
    if args.save_paintings:
        for tag, image in zip("ab", paintings):
            save_image(out.with_name(f"{out.stem}.{tag}.png"), image)
    with tempfile.TemporaryDirectory(prefix="inkwalk-demo-") as cache:
        result = render_collection(paintings, out, settings, cache_dir=cache, sheet=False)
    print(f"{result.path}: {result.frames} frames, {result.duration_s:.2f} s at {result.fps:g} fps, "
          f"{size[0]}x{size[1]} ({time.perf_counter() - start:.1f} s)")
    return 0
