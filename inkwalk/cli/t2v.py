"""`inkwalk t2v`: ConCLVD text-to-video of any length (windowed DDIM + classifier-free guidance, then SOFP)."""

from __future__ import annotations

import argparse

from inkwalk.cli._options import fill_from, labels, option_names, recorded_settings

SD15 = ["sd15-tokenizer", "sd15-text-encoder", "sd15-vae", "sd15-unet"]
# options left out take the `--from` video's value, else these
DEFAULTS = {"negative_prompt": "", "frames": 8, "steps": 25, "guidance": 8.0, "size": "256", "seed": 0, "fps": 8.0,
            "flow": "dis", "no_sofp": False, "loop": False, "prompt_interpolation": "linear", "weighting": "pyramid",
            "noise": "shuffle_context", "windowing": "model"}
SCROLL = ("window", "overlap", "prompts")  # left out: the `--from` video's, else the sampler's defaults


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("t2v", help="text to a Chinese-landscape-painting video (ConCLVD)",
                              description="Generate N frames with ConCLVD (SD 1.5 + motion module) by DDIM "
                                          "with classifier-free guidance, in overlapping windows of frames, then "
                                          "SOFP-interpolate to 2N-1 frames (2N when looping).")
    p.add_argument("prompt", nargs="?", default=None, help="what the video shows (with --from: the video's prompt)")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4)")
    p.add_argument("--negative", dest="negative_prompt", default=None,
                   help="negative prompt (what to steer away from)")
    p.add_argument("--frames", type=int, default=None, help="latent frames sampled by diffusion, N (default 8)")
    p.add_argument("--window", type=int, default=None,
                   help="frames per model call (default 16, at most N): longer videos are sampled in windows")
    p.add_argument("--overlap", type=int, default=None, help="frames neighbouring windows share (default 4)")
    p.add_argument("--loop", action="store_true", default=None,
                   help="seamless loop: windows wrap from the last frame to the first; SOFP gives 2N frames")
    p.add_argument("--prompts", metavar="FILE.json|SCHEDULE", default=None,
                   help="prompt travel: a JSON file or text like '0:spring mountains|48:autumn river' (frame: "
                        "prompt, frames increasing); PROMPT is frame 0's unless the schedule names frame 0")
    p.add_argument("--prompt-interpolation", choices=("linear", "slerp"), default=None,
                   help="how prompt travel blends neighbouring prompts' text embeddings (default linear)")
    p.add_argument("--weighting", choices=("pyramid", "flat"), default=None,
                   help="how overlapping windows' noise predictions fuse: pyramid (a window's middle frames count "
                        "most, FreeNoise's; the default) or flat (all alike)")
    p.add_argument("--noise", choices=("shuffle_context", "random"), default=None,
                   help="initial noise: shuffle_context (FreeNoise's rescheduling, later windows reuse earlier "
                        "noise frames shuffled; the default) or random (every frame its own)")
    p.add_argument("--windowing", metavar="model|motion", default=None,
                   help="model (default): each window is one model call; motion: FreeNoise's, one model call over "
                        "all N frames per step with the windows inside the motion modules (fewer image-layer passes, "
                        "memory grows with N)")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default 25)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default 8)")
    p.add_argument("--size", default=None, help="frame size WIDTHxHEIGHT or one side (square), multiples of 8 "
                                               "(default 256; a handscroll is wide: 512x256)")
    p.add_argument("--seed", type=int, default=None, help="random seed: same seed, same video (default 0)")
    p.add_argument("--motion-module", metavar="PATH", default=None,
                   help="trained motion module (.safetensors from training), an mm_sd_v15_v2 checkpoint or a "
                        "diffusers MotionAdapter folder (default: the registry's AnimateDiff adapter)")
    p.add_argument("--sparse-causal", action=argparse.BooleanOptionalAction, default=None,
                   help="Sparse-Causal attention in the motion module; --no-sparse-causal is the paper's ablation "
                        "(AnimateDiff's module). Default: the motion module file's own setting, else on")
    p.add_argument("--norm-mode", choices=("per-frame", "joint"), default=None,
                   help="motion-module GroupNorm: per-frame (AnimateDiff's original, the default) or joint "
                        "(diffusers'). Default: the motion module file's own setting")
    p.add_argument("--no-sofp", action="store_true", default=None, help="skip SOFP interpolation (keep the N sampled frames)")
    p.add_argument("--flow", default=None, choices=["dis", "raft", "raft-large", "raft-small"],
                   help="optical flow for SOFP (default dis, weight-free; the paper uses raft)")
    p.add_argument("--fps", type=float, default=None, help="output frame rate (default 8)")
    p.add_argument("--from", dest="from_video", metavar="VIDEO.mp4", default=None,
                   help="reuse the prompt and settings recorded in an inkwalk ConCLVD video; options and a prompt "
                        "given here override them")
    p.add_argument("--models", metavar="DIR", default=None, help="local models folder (else $INKWALK_MODELS, then the hub)")
    p.add_argument("--device", default=None, help="torch device (default cuda if available, else cpu)")
    p.set_defaults(func=handler, option_names=option_names(p))


def handler(args: argparse.Namespace) -> int:
    from pathlib import Path

    from inkwalk.availability import interpolator_models, require_models
    from inkwalk.provenance import command_metadata
    from inkwalk.errors import InkwalkError
    from inkwalk.limits import Limits, check_number
    from inkwalk.settings_schemas import check_prompt, parse_conclvd_settings
    from inkwalk.video import check_output, format_fps

    # every user mistake is refused here, in milliseconds, before torch or any model loads
    check_output(args.output, "video")
    if args.from_video:
        made = recorded_settings(args.from_video, "conclvd")
        recorded = {**made["settings"], "prompt": made.get("prompt")}
        if args.no_sofp is None and isinstance(recorded.get("sofp"), bool):
            args.no_sofp = not recorded["sofp"]
        fill_from(args, recorded, ("prompt", *DEFAULTS, *SCROLL, "sparse_causal", "norm_mode"))
    if args.prompt is None:
        raise InkwalkError("give a prompt (or --from VIDEO.mp4 to reuse a video's)")
    for name, value in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    limits = Limits.cli()
    check_prompt(args.prompt, limits)
    given = {k: getattr(args, k) for k in ("negative_prompt", "frames", "window", "overlap", "loop",
                                           "prompt_interpolation", "weighting", "noise", "windowing", "steps",
                                           "guidance", "size", "seed")}
    if args.prompts is not None:  # a --from video's schedule is already the job setting
        given["prompts"] = args.prompts if isinstance(args.prompts, dict) else _schedule(args.prompts, labels(args))
    settings = parse_conclvd_settings({k: v for k, v in given.items() if v is not None}, {}, limits, labels(args))
    check_number("fps", args.fps, 1, limits.max_fps, label=labels(args))
    if args.motion_module and not Path(args.motion_module).exists():
        raise InkwalkError(f"--motion-module {args.motion_module} does not exist: give a save_trainable "
                           ".safetensors file, an mm_sd_v15_v2 checkpoint or a diffusers MotionAdapter folder")
    needed = SD15 + ([] if args.motion_module else ["animatediff-motion-adapter"])
    require_models(needed + ([] if args.no_sofp else interpolator_models("sofp", args.flow)), args.models)

    import torch

    from inkwalk.conclvd import load_conclvd, render_video

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if torch.device(device).type == "cuda" else None
    structure = {k: v for k, v in (("sparse_causal", args.sparse_causal), ("norm_mode", args.norm_mode))
                 if v is not None}
    model = load_conclvd(models_dir=args.models, motion_module=args.motion_module, device=device, dtype=dtype,
                         config=structure)
    recorded = {"fps": args.fps, "sofp": not args.no_sofp, "flow": args.flow, **structure}
    count = render_video(model, args.prompt, args.output, args.fps, settings.model_dump(),
                         metadata=command_metadata("conclvd", recorded), sofp=not args.no_sofp, flow=args.flow,
                         models_dir=args.models, show_progress=True)
    width, height = settings.size
    print(f"{args.output}: {count} frames {width}x{height} at {format_fps(args.fps)} fps")
    return 0


def _schedule(text: str, label) -> dict[str, str]:
    """`--prompts` (a JSON file or inline schedule) as the job setting: frame index strings -> prompts."""
    from pathlib import Path

    from inkwalk.conclvd.prompt_travel import parse_schedule
    from inkwalk.errors import InkwalkError

    try:
        if text.endswith(".json"):
            if not Path(text).is_file():
                raise InkwalkError("no such JSON file")
            return {str(k): v for k, v in parse_schedule(Path(text).read_text(encoding="utf-8")).items()}
        return {str(k): v for k, v in parse_schedule(text).items()}
    except (InkwalkError, OSError, UnicodeDecodeError) as exc:
        raise InkwalkError(f"{label('prompts', text)}: {exc}") from None
