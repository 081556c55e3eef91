"""The `inkwalk` command.

Each sub-command lives in its own module of this package and exposes
`register(subparsers) -> None`, which adds its parser and sets `func=handler(args) -> int`.
Modules are discovered automatically, so adding a command never edits this file. Commands
that need Ray (`render`, `serve`, `demo`) live in the Ray folders and register themselves
through the ``inkwalk.commands`` entry-point group, so this package never imports Ray.

Every user mistake ends in one line on stderr and a non-zero exit: 2 for a malformed command
line (argparse), 1 for an `InkwalkError`, 130 / 143 when interrupted / terminated (outputs
being written are dropped, never left torn: see `inkwalk.video_writer.VideoWriter`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import threading
from importlib.metadata import entry_points

from inkwalk import __version__
from inkwalk.errors import InkwalkError


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line (argparse prints the usage block first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so `with` blocks drop their partial outputs (a
    BaseException, like KeyboardInterrupt, so no `except Exception` mistakes it for an error)."""


def _raise_terminated(signum, frame):
    raise Terminated()


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="inkwalk", description="Paintings and text into art videos.")
    parser.add_argument("--version", action="version", version=f"inkwalk {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # __main__ and private helpers
            continue
        importlib.import_module(f"{__name__}.{info.name}").register(subparsers)
    for entry in sorted(entry_points(group="inkwalk.commands"), key=lambda e: e.name):
        entry.load()(subparsers)
    return parser


def _reader_went_away() -> int:
    """stdout's reader closed it (``inkwalk info ... | head``): stop quietly, as `head`'s other
    writers do, with 128 + SIGPIPE, and keep Python's final flush from printing a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's exit
        return code
    except BrokenPipeError:
        return _reader_went_away()
    except InkwalkError as exc:
        print(f"inkwalk: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("inkwalk: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("inkwalk: terminated", file=sys.stderr)
        return 143
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
