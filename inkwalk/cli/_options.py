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


def recorded_settings(path: str, app: str) -> dict:
    """What an inkwalk mp4 records about how it was made (`settings`, and `prompt` for ConCLVD),
    for `--from`; a video of another app, or without inkwalk's metadata, is one clear error."""
    from inkwalk.provenance import read_metadata
    from inkwalk.errors import InkwalkError
    from inkwalk.video import probe

    probe(path)  # a missing or broken file: the usual one-line error
    made = read_metadata(path)
    if not isinstance(made.get("settings"), dict):
        raise InkwalkError(f"--from {path}: the video has no inkwalk settings (not made by inkwalk, or re-encoded)")
    if made.get("app") != app:
        command = {"artwalks": "walk", "conclvd": "t2v"}.get(str(made.get("app")))
        raise InkwalkError(f"--from {path}: made by inkwalk {made.get('app')!r}, not {app!r}"
                           + (f": use `inkwalk {command} --from`" if command else ""))
    return made


def fill_from(args: argparse.Namespace, recorded: dict, names) -> list[str]:
    """Set each option in `names` the user left out (None) from `recorded`; explicit flags win.
    Returns the options taken from the video."""
    taken = []
    for name in names:
        if getattr(args, name, None) is None and recorded.get(name) is not None:
            value = recorded[name]
            setattr(args, name, "x".join(map(str, value)) if isinstance(value, list) else value)
            taken.append(name)
    return taken
