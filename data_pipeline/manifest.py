"""Manifest readers: which videos to cut into clips and what each one shows.

Three formats, told apart by their columns, read from a local path or any pyarrow-filesystem URI:

* CSV with ``video,caption`` columns (other columns are ignored);
* JSON Lines with one ``{"video": ..., "caption": ...}`` object per line;
* the CLV-HD authors' WebVid-style CSV ``videoid,name,page_dir``: the video is
  ``<video root>/<page_dir>/<videoid>.mp4`` and the caption is ``name``.

Relative video paths are resolved against the manifest's folder (or ``video_root``). Rows
with no video path or an empty caption are not dropped silently: they come back as rejects
with a reason.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from dataclasses import dataclass
from urllib.parse import urlparse

from inkwalk.errors import InkwalkError

REASON_MISSING_PATH = "missing-path"
REASON_EMPTY_CAPTION = "empty-caption"

WEBVID_COLUMNS = ("videoid", "name", "page_dir")


class ManifestError(InkwalkError):
    """A manifest that cannot be read at all (missing, wrong format, wrong columns)."""


@dataclass(frozen=True)
class ManifestEntry:
    video: str
    caption: str
    line: int


@dataclass(frozen=True)
class ManifestReject:
    video: str
    caption: str
    line: int
    reason: str
    detail: str


def _is_uri(path: str) -> bool:
    return len(urlparse(path).scheme) > 1


def _read_text(path: str) -> str:
    if not _is_uri(path) or path.startswith("file://"):
        local = urlparse(path).path if path.startswith("file://") else path
        try:
            with open(local, encoding="utf-8-sig") as f:
                return f.read()
        except FileNotFoundError:
            raise ManifestError(f"manifest {path} not found: pass an existing CSV or JSONL file "
                                f"with video,caption columns") from None
        except IsADirectoryError:
            raise ManifestError(f"manifest {path} is a directory: pass a CSV or JSONL file") from None
        except UnicodeDecodeError:
            raise ManifestError(f"manifest {path} is not UTF-8 text: pass a CSV or JSONL file") from None
    import pyarrow.fs as pafs

    try:
        fs, p = pafs.FileSystem.from_uri(path)
        with fs.open_input_stream(p) as f:
            return f.read().decode("utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} not found") from None
    except Exception as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None


def _parent(path: str) -> str:
    if _is_uri(path):
        return path.rsplit("/", 1)[0]
    return posixpath.dirname(path) or "."


def _resolve(video: str, root: str) -> str:
    if _is_uri(video) or posixpath.isabs(video):
        return video
    if _is_uri(root):
        return f"{root.rstrip('/')}/{video}"
    return posixpath.normpath(posixpath.join(root, video))


def _rows_csv(text: str, path: str) -> tuple[list[str], list[tuple[int, dict]]]:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    reader.fieldnames = columns
    # line numbers are the file's own (header is line 1)
    return columns, [(i + 2, row) for i, row in enumerate(reader)]


def _rows_jsonl(text: str, path: str) -> tuple[list[str], list[tuple[int, dict]]]:
    rows, columns = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"manifest {path} line {n} is not valid JSON ({exc.msg}): "
                                f"write one {{\"video\": ..., \"caption\": ...}} object per line") from None
        if not isinstance(row, dict):
            raise ManifestError(f"manifest {path} line {n} is not a JSON object")
        columns.extend(k for k in row if k not in columns)
        rows.append((n, row))
    return columns, rows


def read_manifest(path: str, video_root: str | None = None) -> tuple[list[ManifestEntry], list[ManifestReject]]:
    """Read a manifest into entries to process and rejects (rows that name no video or caption)."""
    path = str(path)
    text = _read_text(path)
    is_jsonl = path.lower().endswith((".jsonl", ".ndjson", ".json")) or text.lstrip().startswith("{")
    columns, rows = (_rows_jsonl if is_jsonl else _rows_csv)(text, path)
    if not rows:
        raise ManifestError(f"manifest {path} has no rows")
    root = str(video_root) if video_root else _parent(path)
    webvid = "video" not in columns and all(c in columns for c in WEBVID_COLUMNS)
    if not webvid and not ("video" in columns and "caption" in columns):
        raise ManifestError(f"manifest {path} has columns {columns}: it needs 'video' and 'caption' "
                            f"(or the WebVid-style 'videoid,name,page_dir')")
    entries, rejects = [], []
    for line, row in rows:
        if webvid:
            vid, page = str(row.get("videoid") or "").strip(), str(row.get("page_dir") or "").strip()
            video = posixpath.join(page, f"{vid}.mp4") if vid else ""
            caption = str(row.get("name") or "").strip()
        else:
            video = str(row.get("video") or "").strip()
            caption = str(row.get("caption") or "").strip()
        if not video:
            rejects.append(ManifestReject("", caption, line, REASON_MISSING_PATH, "row names no video"))
        elif not caption:
            rejects.append(ManifestReject(_resolve(video, root), "", line, REASON_EMPTY_CAPTION,
                                          "caption is empty"))
        else:
            entries.append(ManifestEntry(_resolve(video, root), caption, line))
    return entries, rejects
