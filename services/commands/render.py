"""`inkwalk render COLLECTION -o out.mp4`: a whole collection on Ray, through the segment path."""

from __future__ import annotations

import argparse

from services.embedded_ray import add_verbose_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    from inkwalk.cli.walk import add_settings_arguments

    p = subparsers.add_parser(
        "render", help="render a collection on Ray (the cluster at RAY_ADDRESS, or an embedded local Ray)",
        description="Render the ArtWalks video of a collection: a folder of paintings (sorted by name), a "
                    "manifest (.txt, one image per line, or .json list) or a URI of either (s3://, gs://...). "
                    "Every piece is interpolated, upscaled and encoded on Ray workers and the chunks are "
                    "joined without re-encoding; chunks already in the store are reused. Uses the cluster at "
                    "RAY_ADDRESS (and its running artwalks app, if any), else starts a local Ray for the render.")
    p.add_argument("collection", help="folder, manifest or URI of the paintings")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4", help="output video (path or URI)")
    add_settings_arguments(p)
    p.add_argument("--store", metavar="DIR|URI", default=None,
                   help="store of inputs and chunks, reachable by every node (default: the running app's, "
                        "else $INKWALK_CACHE or ~/.cache/inkwalk/store)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--config", default=None, metavar="SERVE_CONFIG.yaml",
                   help="replica options when inkwalk deploys its own app (default: the CPU config)")
    p.add_argument("--models", metavar="DIR", default=None, help="local models folder (else $INKWALK_MODELS)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--inflight", type=int, default=None, help="pieces in flight at once (8)")
    p.add_argument("--attempts", type=int, default=None, help="tries per piece before the render fails (3)")
    p.add_argument("--no-sheet", action="store_true", help="do not write the contact sheet PNG")
    add_verbose_flag(p)
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from inkwalk.cli.walk import settings_from_args
    from inkwalk.progress import progress
    from inkwalk.video import format_fps
    from services.collection import render_collection_on_ray

    settings = settings_from_args(args)
    render = {k: v for k, v in (("inflight", args.inflight), ("attempts", args.attempts)) if v is not None}
    with progress(total=1000, desc="render", unit="‰") as bar:
        def on_progress(stage: str, fraction: float) -> None:
            bar.set_description(stage)
            bar.update(int(fraction * 1000) - bar.n)

        summary = render_collection_on_ray(args.collection, args.output, settings, store=args.store,
                                           address=args.address,
                                           config=args.config, models_dir=args.models, num_cpus=args.num_cpus,
                                           render=render, sheet=not args.no_sheet, on_progress=on_progress,
                                           verbose=args.verbose)
    w, h = summary.size
    print(f"{summary.out}: {summary.frames} frames, {summary.frames / summary.fps:.2f} s at "
          f"{format_fps(summary.fps)} fps, "
          f"{w}x{h}; chunks rendered {summary.chunks_rendered} on {len(summary.nodes)} node(s), reused "
          f"{summary.chunks_reused}; {summary.seconds:.1f} s")
    if summary.sheet:
        print(f"contact sheet: {summary.sheet}")
    return 0
