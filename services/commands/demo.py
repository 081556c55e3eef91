"""`inkwalk demo -o demo.mp4`: three paintings inkwalk draws itself, rendered on an embedded Ray."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from inkwalk.cli._options import add_model_options, given_settings, option_names
from services.embedded_ray import add_verbose_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    from inkwalk.walk_settings import WalkSettings

    p = subparsers.add_parser(
        "demo", help="render a demo walk through three drawn ink-wash paintings on Ray (offline, no weights)",
        description="Draws three ink-wash paintings (mountains in mist, a river scene, mountains again) and "
                    "renders an ArtWalks walk through them with `inkwalk render`'s path: a local Ray (or the "
                    "cluster at RAY_ADDRESS), the walk cut into pieces that are interpolated (flow-warp, DIS), "
                    "upscaled x2 (Real-ESRGAN's compact video model, real weights) and encoded on Ray workers, "
                    "the chunks joined without re-encoding.")
    p.add_argument("-o", "--output", default="demo.mp4", metavar="OUT.mp4", help="output video (demo.mp4)")
    p.add_argument("--size", metavar="WxH", default="640x400",
                   help="video size (640x400); the walk renders at half of it and is upscaled x2")
    add_model_options(p, WalkSettings, only=("frames", "hold", "fps", "upscaler", "loop"), short={"frames": "-n"},
                      defaults={"upscaler": "realesrgan-compact", "frames": 46, "hold": 1.0, "fps": 24.0})
    p.add_argument("--paintings", type=int, default=3, help="how many paintings to draw (3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn paintings (0)")
    p.add_argument("--store", metavar="DIR|URI", default=None, help="store of chunks (default: a temporary one)")
    p.add_argument("--save-paintings", action="store_true",
                   help="also write the paintings next to the video (<out>.p0.png, ...)")
    add_verbose_flag(p)
    p.set_defaults(func=handler, option_names=option_names(p))  # every option, the model's included


def handler(args: argparse.Namespace) -> int:
    from inkwalk.cli._options import labels
    from inkwalk.errors import InkwalkError
    from inkwalk.limits import MAX_SEED, Limits, check_number
    from inkwalk.paintings import draw
    from inkwalk.progress import progress
    from inkwalk.settings_schemas import parse_frame_size, parse_walk_settings
    from inkwalk.video import check_output, format_fps, save_image
    from inkwalk.walk_settings import WalkSettings
    from services.collection import render_collection_on_ray

    start = time.perf_counter()
    if not 2 <= args.paintings <= 16:
        raise InkwalkError(f"--paintings must be 2..16, got {args.paintings}")
    out = check_output(args.output, "video")
    out_size = parse_frame_size(args.size, Limits.cli(), "size", labels(args))
    half = tuple(max(16, 2 * round(side / 4)) for side in out_size)  # even sides: H.264 wants them
    given = {"preset": "offline", "size": list(half), "upscale": f"{out_size[0]}x{out_size[1]}",
             **given_settings(args, WalkSettings)}
    settings = parse_walk_settings(given, {}, Limits.cli(), args.paintings, labels(args))
    check_number("seed", args.seed, 0, MAX_SEED, integer=True, label=labels(args))
    size = settings.size
    with tempfile.TemporaryDirectory(prefix="inkwalk-demo-") as tmp:
        folder = Path(tmp) / "paintings"
        for i in range(args.paintings):
            image = draw(("mountains", "river")[i % 2], size, args.seed + i // 2)
            save_image(folder / f"p{i}.png", image)
            if args.save_paintings:
                save_image(out.with_name(f"{out.stem}.p{i}.png"), image)
        with progress(total=1000, desc="render", unit="‰") as bar:
            summary = render_collection_on_ray(folder, out, settings, store=args.store or str(Path(tmp) / "store"),
                                               sheet=False, on_progress=lambda s, f: bar.update(int(f * 1000) - bar.n),
                                               verbose=args.verbose)
    w, h = summary.size
    print(f"{summary.out}: {summary.frames} frames, {summary.frames / summary.fps:.2f} s at "
          f"{format_fps(summary.fps)} fps, "
          f"{w}x{h}, {args.paintings} paintings rendered on Ray ({time.perf_counter() - start:.1f} s)")
    return 0
