"""What a job gets when its settings name nothing: each app's real defaults, choices and limits.

The Studio fills its forms from this (`GET {app}/settings`), so an artist sees the value a left-
out field takes on this server (the app's configured defaults over the preset's values) instead
of the word "default", and the choices the server actually offers for each field.
"""

from typing import Any, Literal, Mapping, get_args, get_origin

from pydantic import BaseModel

from inkwalk.errors import InkwalkError
from inkwalk.limits import Limits, RequestError
from inkwalk.settings_schemas import ConCLVDSettingsModel, parse_conclvd_settings, parse_walk_settings
from inkwalk.walk_settings import PRESETS, WalkSettings


def choices(model: type[BaseModel], served: Mapping[str, str] | None = None) -> dict[str, list]:
    """The allowed values of every `Literal` field; a served backend is the only choice of its field."""
    out = {name: list(get_args(field.annotation)) for name, field in model.model_fields.items()
           if get_origin(field.annotation) is Literal}
    out.update({name: [value] for name, value in (served or {}).items()})
    return out


def walk_form(defaults: Mapping[str, Any], limits: Limits, served: Mapping[str, str]) -> dict[str, Any]:
    """Per preset: the settings of a request naming only that preset, and why this server would refuse
    them (a limit, or null); `preset` is the one a request naming none gets."""
    presets: dict[str, dict[str, Any]] = {}
    for preset in PRESETS:
        request = {"preset": preset, **served}
        try:
            settings = WalkSettings.validated({**defaults, **request})
        except InkwalkError as exc:
            presets[preset] = {"settings": None, "refused": str(exc)}
            continue
        try:
            parse_walk_settings(request, defaults, limits, limits.min_paintings)
            refused = None
        except RequestError as exc:
            refused = str(exc)
        presets[preset] = {"settings": _json(settings.model_dump()), "refused": refused}
    return {"preset": defaults.get("preset", "paper"), "presets": presets,
            "choices": choices(WalkSettings, served),
            "limits": {name: getattr(limits, key) for name, key in WalkSettings.limited_by.items()}}


def conclvd_form(defaults: Mapping[str, Any], limits: Limits, served: Mapping[str, str] | None = None
                 ) -> dict[str, Any]:
    """The settings a ConCLVD job naming none gets on this app, its choices (`served`: the one value a
    field takes on this server) and limits."""
    try:
        settings, refused = parse_conclvd_settings({}, defaults, limits), None
    except RequestError as exc:  # the configured defaults break a limit: show them, and why
        settings, refused = ConCLVDSettingsModel.model_validate(dict(defaults)), str(exc)
    return {"settings": _json(settings.model_dump()), "refused": refused,
            "choices": choices(ConCLVDSettingsModel, served),
            "limits": {**{name: getattr(limits, key) for name, key in ConCLVDSettingsModel.limited_by.items()},
                       "size": limits.max_size}}


def _json(values: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
