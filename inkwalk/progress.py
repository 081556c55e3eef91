"""One progress-bar helper for every long-running loop, so the CLI looks the same everywhere."""

from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", disable: bool | None = None) -> tqdm:
    """Wrap `iterable` (or make a manual bar with `total`) in a tqdm bar on stderr.

    Bars are hidden when stderr is not a terminal, or INKWALK_NO_PROGRESS=1, unless forced.
    """
    if disable is None:
        disable = os.environ.get("INKWALK_NO_PROGRESS") == "1" or not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True,
                leave=False, file=sys.stderr)


def iter_progress(iterable: Iterable[T], **kwargs) -> Iterator[T]:
    """Iterate with a bar; the plain-iterator form of `progress`."""
    yield from progress(iterable, **kwargs)
