"""How the commands name an option in one-line messages: the way the user typed it (``--fps 1000``)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inkwalk.limits import Labeler


def option_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """dest -> the long option string (``keyframes`` -> ``--keyframes``); store it with `set_defaults`."""
    return {a.dest: max(a.option_strings, key=len) for a in parser._actions if a.option_strings}


def labels(args: argparse.Namespace) -> "Labeler":
    """The `inkwalk.limits` labeler for the options `option_names` stored in `args`."""
    from inkwalk.limits import option_labeler  # pydantic and Pillow: only once a command runs

    return option_labeler(args.option_names)


class DeprecatedAlias(argparse.Action):
    """An old option name that still works, with a one-line warning naming the new one
    (``add_argument("--cache", dest="store", action=DeprecatedAlias, new="--store")``)."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, help=f"deprecated: use {new}", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated, use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)
