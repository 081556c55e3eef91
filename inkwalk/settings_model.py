"""The base of each app's settings model: one pydantic model, validated once at each edge.

A model's fields carry fixed outer bounds (usable as OpenAPI schemas and CLI options); its
validators read the configured `Limits` from the validation context, so one `validated` call
checks types, bounds and limits, and every refusal is one `RequestError` line naming the field
and what it accepts. The validated object then travels as is (Ray pickles it).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, model_validator
from typing_extensions import Self

from inkwalk.limits import Labeler, Limits, RequestError, number_text, setting_label, shown_value


def _bounds(model: type[BaseModel], name: str) -> dict[str, float]:
    out = {}
    for meta in model.model_fields[name].metadata:
        for key in ("ge", "gt", "le", "lt", "multiple_of", "max_length"):
            if getattr(meta, key, None) is not None:
                out[key] = getattr(meta, key)
    return out


def allowed(model: type["SettingsModel"], name: str, high: float | None = None) -> str:
    """What field `name` of `model` accepts, in words (``an integer in 0..32``), capped at `high`."""
    if name in model.allowed_text:
        return model.allowed_text[name]
    field = model.model_fields[name]
    if field.annotation is bool:
        return "true or false"
    if getattr(field.annotation, "__origin__", None) is Literal:
        return "one of: " + ", ".join(map(str, field.annotation.__args__))
    b = _bounds(model, name)
    if field.annotation is str:
        return f"a string of at most {high if high is not None else b.get('max_length', '?')} characters"
    top = min(b["le"], high) if high is not None else b["le"]
    kind = "an integer" if field.annotation is int else "a number"
    if "multiple_of" in b:
        kind = f"a multiple of {number_text(b['multiple_of'])}"
    if "gt" in b:
        return f"{kind} > {number_text(b['gt'])} and <= {number_text(top)}"
    return f"{kind} in {number_text(b['ge'])}..{number_text(top)}"


def context_of(info: ValidationInfo) -> tuple[Limits | None, Labeler, dict[str, Any]]:
    """(limits, labeler, the whole context) a `validated` call passed to the validators."""
    context = info.context or {}
    return context.get("limits"), context.get("label", setting_label), context


class SettingsModel(BaseModel):
    """Strict settings: no "24" for 24, no 64.5 for an int, no true for 1, finite numbers, no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)
    # what a field accepts, in words, where its type and bounds alone do not say it well
    allowed_text: ClassVar[dict[str, str]] = {}
    # field -> the `Limits` attribute that bounds it from above (a string field: its length)
    limited_by: ClassVar[dict[str, str]] = {}

    @model_validator(mode="after")
    def _within_limits(self, info: ValidationInfo) -> Self:
        limits, label, _ = context_of(info)
        if limits is None:
            return self
        for name, key in self.limited_by.items():
            value, high = getattr(self, name), getattr(limits, key)
            if isinstance(value, str) and len(value) > high:
                raise RequestError(422, f"{label(name, value)}: is {len(value)} characters; the limit is {high} "
                                        f"(limit {key})")
            if not isinstance(value, str) and value > high:
                raise RequestError(422, f"{label(name, value)}: must be {allowed(type(self), name, high)} "
                                        f"(limit {key})")
        return self

    @classmethod
    def validated(cls, data: Any, limits: Limits | None = None, label: Labeler = setting_label,
                  what: str = "setting", **context: Any) -> Self:
        """`data` validated once against the model and `limits`, or a `RequestError` naming the first bad field.

        `label` names a value the way its user wrote it (``setting 'fps' = 1000`` over HTTP,
        ``--fps 1000`` on the CLI); `context` reaches the model's own validators.
        """
        if not isinstance(data, Mapping):
            raise RequestError(422, f"{what}s must be a JSON object, got {shown_value(data)}")
        highs = {name: getattr(limits, key) for name, key in cls.limited_by.items()} if limits else {}
        try:
            return cls.model_validate(dict(data), context={"limits": limits, "label": label, **context})
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            name = str(error["loc"][0]) if error["loc"] else "?"
            if error["type"] == "extra_forbidden" or name not in cls.model_fields:
                raise RequestError(422, f"unknown {what} {name!r}; known: {', '.join(cls.model_fields)}") from None
            raise RequestError(422, f"{label(name, data.get(name))}: must be "
                                    f"{allowed(cls, name, highs.get(name))}") from None
