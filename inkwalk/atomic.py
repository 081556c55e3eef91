"""Outputs that appear whole or not at all: a temporary file beside the target, then a rename.

An interrupted or failed render must never replace a good video with a torn one, nor leave
half a file under the name a user asked for.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temporary_sibling(path: str | os.PathLike) -> Path:
    """Where an output is written until it is complete: a hidden file beside it, same suffix."""
    target = Path(path)
    return target.with_name(f".{target.stem}.tmp-{uuid.uuid4().hex[:8]}{target.suffix}")


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder (same suffix); rename it onto `path` on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
