"""The `inkwalk` command.

Each sub-command lives in its own module of this package and exposes
`register(subparsers) -> None`, which adds its parser and sets `func=handler(args) -> int`.
Modules are discovered automatically, so adding a command never edits this file. Commands
that need Ray (`render`, `serve`, `demo`) live in the Ray folders and register themselves
through the ``inkwalk.commands`` entry-point group, so this package never imports Ray.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from importlib.metadata import entry_points

from inkwalk import __version__
from inkwalk.errors import InkwalkError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inkwalk", description="Paintings and text into art videos.")
    parser.add_argument("--version", action="version", version=f"inkwalk {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # __main__ and private helpers
            continue
        importlib.import_module(f"{__name__}.{info.name}").register(subparsers)
    for entry in sorted(entry_points(group="inkwalk.commands"), key=lambda e: e.name):
        entry.load()(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except InkwalkError as exc:
        print(f"inkwalk: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("inkwalk: interrupted", file=sys.stderr)
        return 130
