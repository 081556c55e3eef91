"""Operator configuration (Serve app args, limits, retention, render options) as pydantic models.

Unknown keys are refused (`extra="forbid"`) and every refusal is one `InkwalkError` line that
names the key, so a typo in a Serve config fails the deploy instead of being ignored.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from inkwalk.errors import InkwalkError

Model = TypeVar("Model", bound=BaseModel)


class ConfigModel(BaseModel):
    """Configuration: unknown keys refused, finite numbers only, assignments checked."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True)


def _fields(node: Any) -> dict[str, Any]:
    return getattr(node, "model_fields", None) or getattr(node, "__dataclass_fields__", None) or {}


def parse_config(model: type[Model], data: Any, what: str) -> Model:
    """`data` (a mapping, None for all defaults) as `model`, or an `InkwalkError` naming the first bad key."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        key = ".".join(map(str, error["loc"])) or "?"
        if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):  # the latter: a dataclass
            node = model
            for part in error["loc"][:-1]:  # the nested model the unknown key was given to
                annotation = _fields(node).get(part)
                if annotation is not None:
                    node = annotation.annotation if hasattr(annotation, "annotation") else annotation.type
            known = ", ".join(_fields(node))
            raise InkwalkError(f"unknown {what} {key!r}; known: {known}") from None
        raise InkwalkError(f"{what} {key!r} = {error.get('input')!r}: {error['msg'].lower()}") from None
