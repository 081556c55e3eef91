"""`inkwalk upscale IN -o OUT`: super-resolve an image or a video to an exact size."""

from __future__ import annotations

import argparse
from pathlib import Path

from inkwalk.cli._options import labels, option_names
from inkwalk.sr_runtimes import RUNTIMES, RuntimeUnavailable

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm"}
NO_WEIGHTS_HINT = (" -- or use --backend lanczos (no weights), or download the model with "
                   "`inkwalk models fetch {model}`")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("upscale", help="upscale an image or video (Real-ESRGAN or Lanczos)",
                              description="Real-ESRGAN on overlapping tiles, then Lanczos to the exact size; or "
                                          "Lanczos alone (no weights). Get the weights with `inkwalk models fetch "
                                          "realesrgan-x4plus realesr-animevideov3`. A --size with another aspect "
                                          "ratio than the input needs --fit: crop (cut the sides), letterbox "
                                          "(pad with black) or stretch (distort).")
    p.add_argument("input", help="image or video file")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, ...) or video (.mp4)")
    p.add_argument("--backend", choices=("realesrgan", "realesrgan-compact", "lanczos"), default="realesrgan",
                   help="realesrgan: x4plus, best quality (default); realesrgan-compact: realesr-animevideov3, "
                        "fast CPU previews; lanczos: no weights")
    p.add_argument("--size", metavar="xF|WxH", default=None,
                   help="output size, as `walk --upscale`: a factor (x2) or an exact WIDTHxHEIGHT (default x4)")
    p.add_argument("--fit", choices=("crop", "letterbox", "stretch"), default=None,
                   help="how to reach a --size of another aspect ratio (required then)")
    p.add_argument("--tile", type=int, default=None,
                   help="tile size in input pixels (default: 256 for realesrgan, 512 for realesrgan-compact)")
    p.add_argument("--overlap", type=int, default=24, help="context pixels around each tile (24)")
    p.add_argument("--batch", type=int, default=4, help="frames per network call (4)")
    p.add_argument("--models", metavar="DIR", default=None, help="local models folder (else $INKWALK_MODELS, else "
                   "~/.cache/inkwalk/models)")
    p.add_argument("--device", default=None, help="torch device (default cuda if available, else cpu)")
    p.add_argument("--runtime", choices=RUNTIMES, default=None,
                   help="what runs the network: torch, or on CPU onnxruntime / openvino on an ONNX export of the "
                        "same weights (default: torch on CUDA, the measured fastest on CPU)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of the network (default: the CPUs this process may use)")
    p.set_defaults(func=handler, option_names=option_names(p))


def handler(args: argparse.Namespace) -> int:
    import itertools

    import numpy as np

    from inkwalk.availability import require_models
    from inkwalk.provenance import command_metadata
    from inkwalk.errors import InkwalkError
    from inkwalk.image_admission import admit_image, decode_painting
    from inkwalk.limits import Limits, check_number
    from inkwalk.progress import progress
    from inkwalk.settings_schemas import parse_output_size
    from inkwalk.upscale import DEFAULT_TILE, SR_MODELS, changes_aspect, get_upscaler, upscale_fit
    from inkwalk.video import check_output, iter_frames, probe, save_image
    from inkwalk.video_writer import VideoWriter

    src = Path(args.input)
    is_video = src.suffix.lower() in VIDEO_SUFFIXES
    check_output(args.output, "video" if is_video else "image")
    limits, label = Limits.cli(), labels(args)
    tile = args.tile if args.tile is not None else DEFAULT_TILE.get(args.backend, 256)
    check_number("tile", tile, 16, 4096, integer=True, label=label)
    check_number("overlap", args.overlap, 0, tile // 2, integer=True, label=label)
    check_number("batch", args.batch, 1, limits.max_batch, integer=True, label=label)
    if args.threads is not None:
        check_number("threads", args.threads, 1, 256, integer=True, label=label)
    if is_video:
        info = probe(src)
        w, h, fps = info.width, info.height, info.fps or 24.0
    else:
        _, w, h = admit_image(src, limits)
    size = parse_output_size(args.size or "x4", (w, h), limits, "size", label)
    if args.fit is None and changes_aspect((w, h), size):
        raise InkwalkError(f"--size {size[0]}x{size[1]} changes the aspect ratio of the {w}x{h} input "
                           f"({w / h:.3f} -> {size[0] / size[1]:.3f}): add --fit crop (cut the sides), "
                           f"--fit letterbox (pad with black) or --fit stretch (distort)")
    model = SR_MODELS.get(args.backend)
    hint = NO_WEIGHTS_HINT.format(model=model) if model else ""
    if model:
        require_models([model], args.models, hint)
    try:
        upscaler = get_upscaler(args.backend, models_dir=args.models, device=args.device, tile=tile,
                                overlap=args.overlap, batch_size=args.batch, runtime=args.runtime,
                                threads=args.threads)
    except RuntimeUnavailable:
        raise  # about the runtime, not the weights: no weights hint
    except InkwalkError as exc:
        raise InkwalkError(" ".join(str(exc).split()) + hint) from None
    fit = args.fit or "stretch"  # the aspect ratio is kept to within 1%
    recorded = {"backend": args.backend, "size": list(size), "fit": fit, "tile": tile, "overlap": args.overlap}
    if not is_video:
        image = decode_painting(str(src), src, limits)
        save_image(args.output, upscale_fit(upscaler, image, size, fit), command_metadata("upscale", recorded, src))
        print(f"{args.output}: {size[0]}x{size[1]}")
        return 0
    frames = iter_frames(src)
    with VideoWriter(args.output, fps, metadata=command_metadata("upscale", recorded, src)) as writer:
        bar = progress(total=info.frames, desc="upscale", unit="frame")
        while batch := list(itertools.islice(frames, args.batch)):
            writer.write_many(upscale_fit(upscaler, np.stack(batch), size, fit))
            bar.update(len(batch))
        bar.close()
    print(f"{args.output}: {writer.frames_written} frames, {size[0]}x{size[1]}")
    return 0
