"""`inkwalk models`: list the models inkwalk uses and where each is found; write tiny test checkpoints."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list models and their sources; write tiny test checkpoints",
                              description="The models inkwalk uses, their public defaults and local copies.")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    lst = sub.add_parser("list", help="every model: what it is, its default source, where it is found locally")
    lst.add_argument("--models", metavar="DIR", default=None,
                     help="models folder to look in (default: $INKWALK_MODELS)")
    lst.set_defaults(func=_list)
    tiny = sub.add_parser("make-tiny", help="write tiny random checkpoints of every model into DIR (for tests)")
    tiny.add_argument("dir", metavar="DIR", help="folder to write into; use it afterwards as --models DIR")
    tiny.set_defaults(func=_make_tiny)


def _list(args: argparse.Namespace) -> int:
    from inkwalk.models import REGISTRY, local_copy, models_dir

    mdir = models_dir(args.models)
    rows = [("NAME", "WHAT", "DEFAULT SOURCE", "LOCAL")]
    for spec in REGISTRY.values():
        local = local_copy(spec.name, mdir)
        default = spec.default or "convert the official release (see docs/models.md)"
        if spec.subfolder:
            default = f"{default} ({spec.subfolder}/)"
        rows.append((spec.name, spec.description, default, str(local) if local else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[3])
    print(f"\nmodels folder: {mdir if mdir is not None else 'none (set --models DIR or INKWALK_MODELS)'}")
    return 0


def _make_tiny(args: argparse.Namespace) -> int:
    from pathlib import Path

    from inkwalk.models import make_tiny

    root = Path(args.dir)
    if root.exists() and not root.is_dir():
        from inkwalk.errors import InkwalkError

        raise InkwalkError(f"{root} exists and is not a folder; give a folder to write the tiny models into")
    written = make_tiny(root)
    print(f"wrote {len(written)} tiny models to {root}; use them with --models {root} or INKWALK_MODELS={root}")
    return 0
