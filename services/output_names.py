"""File names that say what made a job's output (the paintings or the prompt, and the seed), not its id.

The Studio names its downloads the same way (static/job-view.js `outputName`).
"""

import re
import unicodedata
from pathlib import PurePosixPath
from urllib.parse import quote

from services.store import JobRecord


def _slug(text: str, words: int) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    return "-".join(re.sub(r"[\W_]+", " ", text).split()[:words])


def output_stem(record: JobRecord) -> str:
    """``walk-<painting stems>-seed<S>`` or ``landscape-<first words of the prompt>-seed<S>``."""
    settings = record.settings or {}
    if record.app == "artwalks":
        what = "_".join(_slug(PurePosixPath(i.get("name") or "").stem, 3) for i in record.inputs)
        kind = "walk"
    else:
        what, kind = _slug(str(settings.get("prompt", "")), 6), "landscape"
    seed = f"-seed{settings['seed']}" if "seed" in settings else ""
    return f"{kind}-{what[:80] or record.job_id[:8]}{seed}"


def content_disposition(filename: str) -> str:
    """``inline`` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / RFC 5987)."""
    fallback = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"
