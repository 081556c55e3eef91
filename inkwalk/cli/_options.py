"""Command options made from a settings model, and how messages name them: the way the user typed it
(``--fps 1000``)."""

from __future__ import annotations

import argparse
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
                      defaults: dict[str, Any] | None = None, presets: dict[str, dict[str, Any]] | None = None
                      ) -> None:
    """One option per field of a settings model (`only` some), typed and documented from the field.

    An option left out is None (the model's or preset's value applies) unless `defaults` names it;
    the model validates the values, so its refusals name the option (see `labels`).
    """
    short, metavars, defaults, presets = short or {}, metavars or {}, defaults or {}, presets or {}
    for name, field in model.model_fields.items():
        if only and name not in only:
            continue
        flags = [*([short[name]] if name in short else []), "--" + name.replace("_", "-")]
        default = defaults.get(name, field.default)
        by_preset = ", ".join(f"{p}: {values[name]}" for p, values in presets.items()
                              if name in values and values[name] != default)
        shown = f" (default {default}{'; ' + by_preset if by_preset else ''})" if name != "preset" else ""
        kw: dict[str, Any] = dict(dest=name, default=defaults.get(name), help=f"{field.description}{shown}")
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
