"""`inkwalk export VIDEO --format png|webm|gif`: a video as a PNG frame sequence, WebM or GIF."""

from __future__ import annotations

import argparse

from inkwalk.export import DEFAULT_TEMPLATE, EXPORT_FORMATS, GIF_WIDTH, TEMPLATE_FIELDS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="export a video as PNG frames, WebM or GIF",
        description="Write an mp4 (any video PyAV reads) as a folder of PNG frames, a WebM (VP9) or an animated "
                    "GIF. The output name may hold the fields " + ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
                    + ", filled from the video's inkwalk metadata (e.g. -o '{paintings}_seed{seed}.gif').")
    p.add_argument("video", help="the video to export")
    p.add_argument("--format", choices=EXPORT_FORMATS, required=True, help="png (a folder of frames), webm or gif")
    p.add_argument("-o", "--output", default=None, metavar="NAME",
                   help="output path or template (default: " + ", ".join(f"{k}: {v}" for k, v in DEFAULT_TEMPLATE.items())
                        + "; beside the video)")
    p.add_argument("--gif-width", type=int, default=GIF_WIDTH,
                   help=f"largest GIF width in pixels, 0 keeps the video's (default {GIF_WIDTH})")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from inkwalk.provenance import read_metadata
    from inkwalk.errors import InkwalkError
    from inkwalk.export import check_export_output, export_video, output_name
    from inkwalk.video import probe

    if args.gif_width < 0:
        raise InkwalkError(f"--gif-width {args.gif_width}: must be 0 (the video's width) or a positive width")
    info = probe(args.video)  # a missing or broken video: one line before anything is written
    dst = output_name(args.output or DEFAULT_TEMPLATE[args.format], args.video, read_metadata(args.video), args.format)
    check_export_output(dst, args.format)
    frames = export_video(args.video, dst, args.format, gif_width=args.gif_width or None)
    print(f"{dst}: {frames} frames ({args.format}) from {info.frames} at {info.width}x{info.height}")
    return 0
