"""Command options made from a settings model, deprecated aliases, `--from` a video's recorded
settings, and how messages name an option: the way the user typed it (``--fps 1000``)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

if TYPE_CHECKING:
    from pydantic import BaseModel

    from inkwalk.limits import Labeler


def option_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """dest -> the long option string (``keyframes`` -> ``--keyframes``); store it with `set_defaults`."""
    return {a.dest: max(a.option_strings, key=len) for a in parser._actions if a.option_strings}


def labels(args: argparse.Namespace) -> "Labeler":
    """The `inkwalk.limits` labeler for the options `option_names` stored in `args`."""
    from inkwalk.limits import option_labeler  # pydantic and Pillow: only once a command runs

    return option_labeler(args.option_names)


def add_model_options(parser: argparse.ArgumentParser, model: type["BaseModel"], *, only: tuple[str, ...] = (),
                      short: dict[str, str] | None = None, metavars: dict[str, str] | None = None,
                      defaults: dict[str, Any] | None = None, presets: dict[str, dict[str, Any]] | None = None,
                      notes: dict[str, str] | None = None) -> None:
    """One option per field of a settings model (`only` some), typed and documented from the field.

    An option left out is None (the model's or preset's value applies) unless `defaults` names it;
    the model validates the values, so its refusals name the option (see `labels`).
    """
    short, metavars, defaults, presets, notes = short or {}, metavars or {}, defaults or {}, presets or {}, notes or {}
    for name, field in model.model_fields.items():
        if only and name not in only:
            continue
        flags = [*([short[name]] if name in short else []), "--" + name.replace("_", "-")]
        default = defaults.get(name, field.default)
        by_preset = ", ".join(f"{p}: {values[name]}" for p, values in presets.items()
                              if name in values and values[name] != default)
        shown = f" (default {default}{'; ' + by_preset if by_preset else ''})" if name != "preset" else ""
        kw: dict[str, Any] = dict(dest=name, default=defaults.get(name), help=f"{field.description}{shown}"
                                  + (f". {notes[name]}" if name in notes else ""))
        if field.annotation is bool:
            kw.update(action="store_const", const=True)
        elif get_origin(field.annotation) is Literal:
            kw.update(choices=get_args(field.annotation))
        elif field.annotation in (int, float):
            kw.update(type=field.annotation)
        if name in metavars:
            kw["metavar"] = metavars[name]
        parser.add_argument(*flags, **kw)
    parser.set_defaults(option_names=option_names(parser))


def given_settings(args: argparse.Namespace, model: type["BaseModel"]) -> dict[str, Any]:
    """The model's fields the user gave as options (or that have a command default)."""
    return {name: getattr(args, name) for name in model.model_fields if getattr(args, name, None) is not None}


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
