"""Jobs in the shared store: records, inputs and outputs, cancel requests, and their retention.

A job lives under ``jobs/<app>/<job_id>/``: ``job.json`` (the record, rewritten whole),
``inputs/`` (the uploaded paintings), ``video.mp4``, ``keyframes.png``, and ``cancel`` (an empty
marker any ingress replica may write; the job's owner sees it). Chunks, walk rows and previews
are shared by all jobs and named by their content (`inkwalk.segments`). Everything a job needs
to resume lives here, so a restarted ingress loses nothing.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import pyarrow.fs as pafs

from inkwalk.config_model import ConfigModel
from inkwalk.errors import InkwalkError
from inkwalk.store import Store

STATES = ("queued", "running", "done", "failed", "cancelled")
TERMINAL = ("done", "failed", "cancelled")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
SHARED = ("chunks", "walks", "previews", "inputs", "renders")  # content-addressed folders


@dataclass
class JobRecord:
    """What a client sees of a job (GET .../jobs/{id}) plus what a restart needs to resume it."""

    job_id: str
    app: str
    state: str = "queued"
    stage: str = "queued"
    progress: float = 0.0
    error: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)  # {name, path, sha256, size}
    outputs: dict[str, str] = field(default_factory=dict)  # {"video": path, "keyframes": path}
    previews: list[int] = field(default_factory=list)  # walks whose keyframe row can be fetched
    walk_keys: list[str] = field(default_factory=list)
    owner: str = ""
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    heartbeat_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    frames: int | None = None
    windows: dict[str, Any] | None = None  # ConCLVD scrolls: {"done", "total", "replicas"}
    chunks_rendered: int | None = None
    chunks_reused: int | None = None
    resumed: int = 0  # times another ingress replica took the job over
    resubmittable: bool = False
    version: str = ""
    models: dict[str, Any] = field(default_factory=dict)

    PUBLIC = ("job_id", "app", "state", "stage", "progress", "error", "resubmittable", "frames", "settings",
              "created_at", "updated_at", "started_at", "finished_at", "previews", "chunks_rendered",
              "chunks_reused", "resumed", "version", "models", "windows")

    def public(self) -> dict[str, Any]:
        """The record as the HTTP API returns it."""
        out = {k: getattr(self, k) for k in self.PUBLIC}
        out["paintings"] = [i.get("name", "") for i in self.inputs]
        return out

    @classmethod
    def from_json(cls, data: bytes) -> "JobRecord":
        raw = json.loads(data)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def new_job_id() -> str:
    """A job id that is unique across replicas and restarts (32 hex digits)."""
    return uuid.uuid4().hex


class Retention(ConfigModel):
    """How long finished work is kept (app args `retention:`)."""

    job_ttl_s: float = 30 * 86400  # finished jobs (record, inputs, video) older than this go
    max_jobs: int = 1000  # per app: the oldest finished jobs beyond this go
    chunk_ttl_s: float = 7 * 86400  # chunks, walk rows, previews, copied inputs not written since
    max_shared_bytes: int = 50 * 1024**3  # content-addressed files beyond this go, oldest first
    temp_ttl_s: float = 3600  # half-written files (a writer was killed) older than this go
    interval_s: float = 600  # how often an ingress replica applies the rules


class JobStore(Store):
    """The store with the job layout on top (see the module docstring)."""

    def job_dir(self, app: str, job_id: str) -> str:
        if not JOB_ID.match(job_id):  # never build a path from anything but our own ids
            raise InkwalkError(f"bad job id {job_id!r}")
        return f"jobs/{app}/{job_id}"

    def job_path(self, app: str, job_id: str, name: str) -> str:
        return f"{self.job_dir(app, job_id)}/{name}"

    def save(self, record: JobRecord) -> None:
        record.updated_at = time.time()
        self.put_bytes(self.job_path(record.app, record.job_id, "job.json"), json.dumps(asdict(record)).encode())

    def load(self, app: str, job_id: str) -> JobRecord | None:
        if not JOB_ID.match(job_id):
            return None
        data = self.get_bytes(self.job_path(app, job_id, "job.json"))
        return JobRecord.from_json(data) if data is not None else None

    def list_jobs(self, app: str) -> list[JobRecord]:
        """Every job record of an app, newest first."""
        records = []
        for info in self.list(f"jobs/{app}"):
            if info.type == pafs.FileType.Directory and JOB_ID.match(info.base_name):
                try:
                    record = self.load(app, info.base_name)
                except (ValueError, TypeError):  # a record being replaced right now, or not ours
                    continue
                if record is not None:
                    records.append(record)
        return sorted(records, key=lambda r: r.created_at, reverse=True)

    def request_cancel(self, app: str, job_id: str) -> None:
        self.put_bytes(self.job_path(app, job_id, "cancel"), b"")

    def cancel_requested(self, app: str, job_id: str) -> bool:
        return self.exists(self.job_path(app, job_id, "cancel"))

    def delete_job(self, app: str, job_id: str) -> None:
        self.delete(self.job_dir(app, job_id))

    # ------------------------------------------------------------------ retention
    def apply_retention(self, app: str, rules: Retention, now: float | None = None) -> dict[str, int]:
        """Delete what the rules say is old or too much; returns counts of what went."""
        now = time.time() if now is None else now
        gone = {"jobs": 0, "shared": 0, "temporaries": 0}
        finished = [r for r in self.list_jobs(app) if r.state in TERMINAL]
        for i, record in enumerate(finished):  # newest first
            age = now - (record.finished_at or record.updated_at)
            if age > rules.job_ttl_s or i >= rules.max_jobs:
                self.delete_job(app, record.job_id)
                gone["jobs"] += 1
        shared = []
        for folder in SHARED:
            for info in self.fs.get_file_info(pafs.FileSelector(self.full(folder), recursive=True,
                                                                 allow_not_found=True)):
                if info.type == pafs.FileType.File and info.mtime is not None:
                    shared.append((info.mtime.timestamp(), info.size or 0, info.path))
        shared.sort(reverse=True)  # newest first
        used = 0
        for mtime, size, path in shared:
            used += size
            if now - mtime > rules.chunk_ttl_s or used > rules.max_shared_bytes:
                self._delete_quietly(path)
                gone["shared"] += 1
        for folder in ("jobs", *SHARED):
            gone["temporaries"] += self.sweep_temporaries(folder, rules.temp_ttl_s)
        gone["temporaries"] += self.sweep_unrecorded_jobs(app, rules.temp_ttl_s, now)
        return gone

    def sweep_unrecorded_jobs(self, app: str, older_than_s: float, now: float) -> int:
        """Remove job folders that never got a record (an upload refused or cut off, also by older
        versions, which left its empty input folder) once nothing in them changed for `older_than_s`."""
        removed = 0
        for info in self.list(f"jobs/{app}"):
            if info.type != pafs.FileType.Directory or not JOB_ID.match(info.base_name) \
                    or self.exists(self.job_path(app, info.base_name, "job.json")):
                continue
            inside = self.fs.get_file_info(pafs.FileSelector(info.path, recursive=True, allow_not_found=True))
            times = [i.mtime.timestamp() for i in [info, *inside] if i.mtime is not None]
            if not times or now - max(times) > older_than_s:
                self.delete_job(app, info.base_name)
                removed += 1
        return removed
