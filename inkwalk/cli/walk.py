"""`inkwalk walk P1 P2 [P3 ...] -o walk.mp4`: the ArtWalks video of a collection of paintings."""

from __future__ import annotations

import argparse
import sys
import time

from inkwalk.cli._options import (DeprecatedAlias, add_model_options, fill_from, given_settings, labels,
                                  recorded_settings)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "walk", help="walk from painting to painting (ArtWalks)",
        description="Render a video that walks through paintings P1 -> P2 -> ... (k paintings = k-1 walks; with --loop k, back to P1). "
                    "Frames: (k-1)(m+1)(n+1) + 1 + k*round(hold*fps). Options left out take the preset's "
                    "value; pieces already rendered with the same inputs and settings are reused from the cache. Runs in "
                    "this process; `inkwalk render` runs the same pieces on Ray. Every value is checked against "
                    "the CLI limits (docs/limits.md) before any work.")
    p.add_argument("paintings", nargs="+", metavar="PAINTING", help="two or more image files, in order")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4", help="output video (.mp4)")
    add_settings_arguments(p)
    p.add_argument("--from", dest="from_video", metavar="VIDEO.mp4", default=None,
                   help="reuse the settings recorded in an inkwalk walk video; options given here override them")
    p.add_argument("--models", metavar="DIR", default=None, help="local models folder (else $INKWALK_MODELS, then the hub)")
    p.add_argument("--store", metavar="DIR|URI", default=None, help="store of rendered chunks, a folder or URI, "
                   "shared with `inkwalk render` (else $INKWALK_CACHE, then ~/.cache/inkwalk/store)")
    p.add_argument("--cache", dest="store", metavar="DIR|URI", action=DeprecatedAlias, new="--store")
    p.add_argument("--device", default=None, help="torch device (default cuda if available, else cpu)")
    p.add_argument("--no-sheet", action="store_true", help="do not write the contact sheet PNG")
    p.set_defaults(func=handler)


def add_settings_arguments(p: argparse.ArgumentParser) -> None:
    """One option per `WalkSettings` field, shared by `inkwalk walk` and `inkwalk render`."""
    from inkwalk.walk_settings import PRESETS, WalkSettings

    add_model_options(p, WalkSettings, short={"keyframes": "-m", "frames": "-n"}, presets=PRESETS,
                      metavars={"size": "WxH", "upscale": "xF|WxH|none"},
                      notes={"preset": "Default: `walk` takes paper when its weights are on this machine, else "
                                       "offline, and says which ran; `render`: paper"})


def default_preset(args: argparse.Namespace) -> tuple[str, str]:
    """The preset `walk` runs without --preset: paper when every model it would load is on this
    machine (local or cached, no network asked), else offline; and a line that says so."""
    from inkwalk.availability import absent_models, walk_models
    from inkwalk.limits import Limits, RequestError
    from inkwalk.settings_schemas import parse_walk_settings
    from inkwalk.walk_settings import WalkSettings

    given = given_settings(args, WalkSettings)
    try:
        paper = parse_walk_settings({**given, "preset": "paper"}, {}, Limits.cli(), len(args.paintings))
    except RequestError:  # a bad option: `settings_from_args` refuses it in one line, naming it
        return "paper", ""
    absent = absent_models(walk_models(paper), args.models)
    if not absent:
        return "paper", "preset: paper (its weights are on this machine)"
    return "offline", (f"preset: offline (no weights needed); paper needs {', '.join(absent)}: "
                       f"`inkwalk models list` says how to get them, then pass --preset paper")


def settings_from_args(args: argparse.Namespace, paintings: int = 2):
    """WalkSettings of the preset with every option the user gave, validated once against the CLI
    limits (`inkwalk.limits.Limits.cli`) for a collection of `paintings`; a bad value is one line
    naming the option and its allowed range."""
    from inkwalk.limits import Limits
    from inkwalk.settings_schemas import parse_walk_settings
    from inkwalk.walk_settings import WalkSettings

    return parse_walk_settings(given_settings(args, WalkSettings), {}, Limits.cli(), paintings, labels(args))


def handler(args: argparse.Namespace) -> int:
    from inkwalk.artwalks import load_walk_models
    from inkwalk.availability import require_models, walk_models
    from inkwalk.errors import InkwalkError
    from inkwalk.image_admission import admit_image, decode_painting
    from inkwalk.limits import Limits
    from inkwalk.local_render import render_collection_in_process
    from inkwalk.video import check_output, format_fps
    from inkwalk.walk_settings import WalkSettings

    start = time.perf_counter()
    # everything a user can get wrong is refused here, in milliseconds, before any decode or model
    check_output(args.output, "video")
    limits = Limits.cli()
    if args.from_video:
        fill_from(args, recorded_settings(args.from_video, "artwalks")["settings"], WalkSettings.model_fields)
    chosen = args.preset is None
    if chosen:
        args.preset, note = default_preset(args)
    settings = settings_from_args(args, len(args.paintings))
    for path in args.paintings:  # headers only: a bad last painting fails before the first decodes
        admit_image(path, limits, size=settings.size, fit=settings.fit)
    hint = " -- or render without any weights: --preset offline" if settings.preset != "offline" else ""
    require_models(walk_models(settings), args.models, hint)
    for path in args.paintings:  # truncated pixel data fails here, one painting in memory at a time
        decode_painting(path, path, limits, settings.size, settings.fit)
    if chosen and note:
        print(note, file=sys.stderr)

    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # hub retries are not news: a real failure raises below
    try:
        models = load_walk_models(settings, models_dir=args.models, device=args.device)
    except InkwalkError as exc:  # weights present but unloadable: fail before any rendering
        raise InkwalkError(" ".join(str(exc).split()) + hint) from None
    result = render_collection_in_process(args.paintings, args.output, settings, cache_dir=args.store,
                                          models_dir=args.models,
                                          models=models, sheet=not args.no_sheet)
    w, h = result.size
    print(f"{result.path}: {result.frames} frames, {result.duration_s:.2f} s at {format_fps(result.fps)} fps, "
          f"{w}x{h}; "
          f"chunks rendered {result.chunks_rendered}, reused {result.chunks_reused}; "
          f"{time.perf_counter() - start:.1f} s")
    if result.sheet:
        print(f"contact sheet: {result.sheet}")
    return 0
