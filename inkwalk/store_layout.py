"""Every path in the results store, in one place.

Content-addressed folders (`SHARED`) hold what any job or render may reuse, each file named by
the hash of what decides its bytes and fanned out by the hash's first two digits. Jobs of the
HTTP apps live under ``jobs/<app>/<job_id>/``. Retention derives the folders it sweeps from
here, so a new kind of file cannot be forgotten by it.
"""

from __future__ import annotations

CHUNKS, WALKS, PREVIEWS, INPUTS, RENDERS, JOBS = "chunks", "walks", "previews", "inputs", "renders", "jobs"
SHARED = (CHUNKS, WALKS, PREVIEWS, INPUTS, RENDERS)  # content-addressed: shared by all jobs

JOB_RECORD = "job.json"  # the record, rewritten whole
JOB_INPUTS = "inputs"  # the uploaded paintings
JOB_VIDEO = "video.mp4"
JOB_SHEET = "keyframes.png"
JOB_CANCEL = "cancel"  # an empty marker any replica may write; the owner sees it
JOB_CLAIMS = "claims"  # one file per take-over generation, created exclusively


def _fanned(folder: str, key: str, suffix: str) -> str:
    return f"{folder}/{key[:2]}/{key}{suffix}"


def chunk_path(key: str) -> str:
    """A piece's encoded chunk."""
    return _fanned(CHUNKS, key, ".mp4")


def walk_row_path(key: str) -> str:
    """A walk's node row (A, K_1..K_m, B as one PNG strip): previews, contact sheet."""
    return _fanned(WALKS, key, ".png")


def preview_path(key: str) -> str:
    """A ConCLVD clip's contact sheet of generated frames."""
    return _fanned(PREVIEWS, key, ".png")


def input_path(sha256: str, suffix: str) -> str:
    """A painting copied in by `inkwalk render`, under its content hash."""
    return _fanned(INPUTS, sha256, suffix)


def render_video_path(key: str) -> str:
    """The video of a collection rendered by `inkwalk render`."""
    return _fanned(RENDERS, key, ".mp4")


def render_sheet_path(key: str) -> str:
    """The contact sheet of a collection rendered by `inkwalk render`."""
    return _fanned(RENDERS, key, ".sheet.png")


def app_jobs_dir(app: str) -> str:
    """The folder of an app's jobs."""
    return f"{JOBS}/{app}"


def job_dir(app: str, job_id: str) -> str:
    """One job's folder (the caller checks `job_id` is one of ours)."""
    return f"{app_jobs_dir(app)}/{job_id}"


def job_file(app: str, job_id: str, *names: str) -> str:
    """A file of a job: `JOB_RECORD`, `JOB_VIDEO`, a claim ``(JOB_CLAIMS, "3")``..."""
    return "/".join((job_dir(app, job_id), *names))
