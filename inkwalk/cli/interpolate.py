"""`inkwalk interpolate IN -o OUT`: more frames per second by frame interpolation, streaming."""

from __future__ import annotations

import argparse

from inkwalk.cli._options import labels, option_names

METHODS = ("flow-warp", "sofp", "blend", "film")  # first = default (measured best, docs/benchmarks.md)
FLOWS = ("dis", "raft", "raft-large", "raft-small")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "interpolate", help="insert frames between a video's frames (flow-warp, SOFP, FILM or blend)",
        description="Interpolate a video: factor F turns N frames into (N-1)*F+1. By default the frame "
                    "rate is multiplied by F so the duration stays the same (smoother motion); "
                    "--keep-fps keeps the source rate (slow motion), --fps sets any rate.")
    p.add_argument("input", help="input video file")
    p.add_argument("-o", "--output", required=True, help="output .mp4 (H.264)")
    p.add_argument("--method", choices=METHODS, default=METHODS[0],
                   help="flow-warp: bidirectional flow warping (default); sofp: ConCLVD eq. 14; "
                        "film: FILM network (needs weights); blend: cross-fade")
    p.add_argument("--flow", choices=FLOWS, default=None,
                   help="optical flow for flow-warp/sofp: dis (OpenCV, no weights; default) or RAFT "
                        "(torchvision weights; raft = raft-large)")
    p.add_argument("--factor", type=int, default=2,
                   help="frame-rate factor (default 2: N -> 2N-1 frames); sofp needs a power of two")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--fps", type=float, default=None,
                      help="output frame rate (default: source fps x factor, same duration)")
    rate.add_argument("--keep-fps", action="store_true", help="keep the source frame rate (slow motion)")
    p.add_argument("--models", default=None, help="models folder (else env INKWALK_MODELS)")
    p.add_argument("--device", default=None, help="torch device for RAFT/FILM (default: cuda if available)")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (default 18)")
    p.set_defaults(func=run, option_names=option_names(p))


def run(args: argparse.Namespace) -> int:
    from inkwalk.availability import interpolator_models, require_models
    from inkwalk.provenance import command_metadata
    from inkwalk.errors import InkwalkError
    from inkwalk.interpolate import interpolate_video, output_frame_count
    from inkwalk.limits import Limits, RequestError, check_number
    from inkwalk.video import check_output, format_fps, probe

    check_output(args.output, "video")
    limits, label = Limits.cli(), labels(args)
    if args.factor < 2:
        raise InkwalkError(f"--factor must be at least 2 (got {args.factor}); factor 2 turns N frames into 2N-1")
    check_number("factor", args.factor, 2, 64, integer=True, label=label)
    check_number("crf", args.crf, 0, 51, integer=True, label=label)
    if args.flow is not None and args.method not in ("flow-warp", "sofp"):
        raise InkwalkError(f"--flow only applies to --method flow-warp or sofp, not {args.method}")
    if args.fps is not None:
        check_number("fps", args.fps, 0, limits.max_fps, low_open=True, label=label)
    info = probe(args.input)
    total = output_frame_count(info.frames, args.factor)
    if total > limits.max_output_frames:
        raise RequestError(413, f"interpolating {info.frames} frames by {args.factor} makes {total} frames; the limit "
                                f"is {limits.max_output_frames}: lower --factor or cut the video")
    hint = (" -- or interpolate without any weights: --method flow-warp" if args.method == "film"
            else " -- or use --flow dis (no weights)")
    require_models(interpolator_models(args.method, args.flow or "dis"), args.models, hint)
    fps = info.fps if args.keep_fps else args.fps
    recorded = {"method": args.method, "factor": args.factor, "fps": fps or info.fps * args.factor, "crf": args.crf}
    if args.method in ("flow-warp", "sofp"):
        recorded["flow"] = args.flow or "dis"
    out = interpolate_video(args.input, args.output, method=args.method, flow=args.flow or "dis",
                            factor=args.factor, fps=fps, models_dir=args.models, device=args.device,
                            crf=args.crf, metadata=command_metadata("interpolate", recorded, args.input))
    out_fps = fps if fps else info.fps * args.factor
    print(f"{out}: {output_frame_count(info.frames, args.factor)} frames at {format_fps(out_fps)} fps "
          f"(from {info.frames} at {format_fps(info.fps)} fps, {args.method})")
    return 0
