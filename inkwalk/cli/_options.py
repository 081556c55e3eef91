"""How the commands name an option in one-line messages: the way the user typed it (``--fps 1000``)."""

from __future__ import annotations

import argparse
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
