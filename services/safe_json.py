"""JSON from clients, parsed with bounds: what pydantic and the store can take, or one 422 line.

Python's `json` turns a 10,000-digit number into a ValueError, a 100,000-deep array into a
RecursionError and ``"\\ud800"`` into a string that cannot be written back as UTF-8; each of
those reached the job record or the listing as a 500. Here the nesting is measured before
parsing, numbers are parsed with a bounded length, NaN/Infinity are refused (not JSON), and
every string (keys too) must encode as UTF-8.
"""

from __future__ import annotations

import json
import math
from typing import Any

from services.limits import RequestError

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40


def loads(text: str | bytes, what: str = "the JSON body") -> Any:
    """Parse client JSON within the bounds above; RequestError(422) naming `what` otherwise."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(422, f"{what} is not UTF-8 (byte {exc.start})") from None
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise RequestError(422, f"{what} is nested {depth} levels deep; the limit is {MAX_DEPTH}")
    try:
        value = json.loads(text, parse_int=_number(int, what), parse_float=_number(float, what),
                           parse_constant=_not_json(what))
    except json.JSONDecodeError as exc:
        raise RequestError(422, f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    check_text(value, what)
    return value


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON text, strings skipped."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def check_text(value: Any, what: str) -> None:
    """RequestError(422) if any string in `value` (keys too) cannot be stored as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            storable(item, what)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def storable(text: str, what: str) -> str:
    """`text` itself, or RequestError(422) if it holds a lone surrogate or other text UTF-8 cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(422, f"{what} holds text that cannot be stored ({exc.reason} at character "
                                f"{exc.start}): send plain UTF-8") from None
    return text


def _number(kind: type, what: str):
    def parse(literal: str):
        if len(literal) > MAX_NUMBER_CHARS:
            raise RequestError(422, f"{what} has a {len(literal)}-character number; the limit is {MAX_NUMBER_CHARS}")
        value = kind(literal)
        if not math.isfinite(value):
            raise RequestError(422, f"{what} has a number out of range ({literal[:20]})")
        return value

    return parse


def _not_json(what: str):
    def refuse(literal: str):
        raise RequestError(422, f"{what} holds {literal}, which is not JSON: send a number")

    return refuse
