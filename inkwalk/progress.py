"""One progress helper for every long-running loop, so the CLI looks the same everywhere.

On a terminal: a tqdm bar with the time left (``ETA``). Elsewhere (a log file, a pipe, a job
runner): a plain line every `LOG_INTERVAL_S` seconds with the count, percentage, elapsed time
and ETA, so long work is never silent; work shorter than the interval prints nothing.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

LOG_INTERVAL_S = 5.0  # seconds between progress lines when stderr is not a terminal
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, ETA {remaining}, {rate_fmt}{postfix}]"
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {elapsed} elapsed, ETA {remaining}"
LINE_FORMAT_NO_TOTAL = "{desc}: {n_fmt} {unit}, {elapsed} elapsed"


class LineProgress(tqdm):
    """tqdm that writes whole lines (no carriage returns) at most every `mininterval` seconds."""

    def __init__(self, *args, **kwargs):
        self._lines = 0
        self._created = time.monotonic()
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> None:
        if msg is not None or time.monotonic() - self._created < self.mininterval:
            return  # tqdm clearing its line, or work too short to report
        fmt = LINE_FORMAT if self.total else LINE_FORMAT_NO_TOTAL
        self.fp.write(self.format_meter(**{**self.format_dict, "bar_format": fmt}) + "\n")
        self.fp.flush()
        self._lines += 1

    def close(self) -> None:
        if self.disable:
            return
        reported, interrupted = self._lines > 0, self.total and self.n < self.total
        if reported and not interrupted:
            self.display()  # the last line says it finished
        self.mininterval = float("inf")  # tqdm's own close refreshes: no extra line
        super().close()


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", disable: bool | None = None) -> tqdm:
    """Wrap `iterable` (or make a manual bar with `total`) in progress on stderr: a bar on a
    terminal, lines every `LOG_INTERVAL_S` s otherwise. INKWALK_NO_PROGRESS=1 hides both."""
    if disable is None:
        disable = os.environ.get("INKWALK_NO_PROGRESS") == "1"
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True,
                    leave=False, file=sys.stderr, bar_format=BAR_FORMAT)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, disable=disable, leave=False,
                        file=sys.stderr, mininterval=LOG_INTERVAL_S, miniters=1)


def iter_progress(iterable: Iterable[T], **kwargs) -> Iterator[T]:
    """Iterate with progress; the plain-iterator form of `progress`."""
    yield from progress(iterable, **kwargs)
