"""`inkwalk eval`: the ConCLVD paper's CLIP-text and CLIP-temp scores of a video."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="CLIP-text and CLIP-temp scores of a video",
                              description="CLIP-text: mean over frames of 100*cos(text, frame). "
                                          "CLIP-temp: mean cosine of consecutive frames' CLIP embeddings.")
    p.add_argument("video", help="video file (mp4)")
    p.add_argument("--prompt", required=True, help="the text the video should show")
    p.add_argument("--models", metavar="DIR", default=None, help="local models folder (else $INKWALK_MODELS, then the hub)")
    p.add_argument("--device", default=None, help="torch device (default cuda if available, else cpu)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from inkwalk.availability import require_models
    from inkwalk.limits import Limits
    from inkwalk.metrics import CLIP_MODEL, clip_temporal_score, clip_text_score
    from inkwalk.settings_schemas import check_prompt
    from inkwalk.video import probe, read_frames

    check_prompt(args.prompt, Limits.cli())
    probe(args.video)  # a missing or broken video fails before any model loads
    require_models([CLIP_MODEL], args.models)
    frames = read_frames(args.video)
    text = clip_text_score(frames, args.prompt, models_dir=args.models, device=args.device)
    temporal = clip_temporal_score(frames, models_dir=args.models, device=args.device)
    print(f"CLIP-text {text:.3f}\nCLIP-temp {temporal:.4f}\nframes {len(frames)}")
    return 0
