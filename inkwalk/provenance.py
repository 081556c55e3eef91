"""What a video records about how it was made: inkwalk's JSON in the container's comment tag.

Written by every command and app that makes a video (`inkwalk.chunks.join_chunks`,
`inkwalk.video_writer.VideoWriter`, `inkwalk.export`), read by `inkwalk info` and `--from`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METADATA_KEY = "comment"  # the mp4 tag that carries inkwalk's JSON metadata


def command_metadata(app: str, settings: dict[str, Any], source: str | Path | None = None) -> dict[str, Any]:
    """What a command that transforms a file (`interpolate`, `upscale`, `t2v`) records in its mp4:
    its settings and, for a source file, its name and content hash (sha256)."""
    from inkwalk import __version__
    from inkwalk.store import sha256_file

    made = {"inkwalk": __version__, "app": app, "settings": settings}
    if source is not None:
        made["source"] = {"name": Path(source).name, "sha256": sha256_file(source)}
    return made


def encode_metadata(metadata: dict[str, Any]) -> str:
    """inkwalk's metadata as the JSON text of the mp4's comment tag."""
    return json.dumps(metadata, sort_keys=True, default=str)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """inkwalk's metadata of a video or a PNG (settings, seed, models, version), {} when it has none."""
    import av

    if Path(path).suffix.lower() == ".png":
        from PIL import Image

        with Image.open(path) as image:
            text = image.info.get(METADATA_KEY, "")
    else:
        with av.open(str(path)) as container:
            # Matroska (WebM) stores tag names in capitals
            text = container.metadata.get(METADATA_KEY) or container.metadata.get(METADATA_KEY.upper(), "")
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}
