"""Results store: job records and outputs in a folder or any pyarrow filesystem URI.

A job lives under ``<root>/<app>/<job_id>/``: ``job.json`` (the record), ``video.mp4`` and
``keyframes.png``. Records are rewritten whole (write to a temporary name, then move), so a
reader never sees half a record, and everything a client can ask for survives the replica
that wrote it: a restarted ingress reads finished jobs back from here.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

TERMINAL = ("done", "failed")
STATES = ("queued", "running", "done", "failed")


@dataclass
class JobRecord:
    """What a client sees of a job (GET .../jobs/{id}) plus what a restart needs to judge it."""

    job_id: str
    app: str
    state: str = "queued"
    stage: str = "queued"
    progress: float = 0.0
    error: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    owner: str = ""
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    heartbeat_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    frames: int | None = None
    resubmittable: bool = False

    def public(self) -> dict[str, Any]:
        """The record as the HTTP API returns it."""
        keys = ("job_id", "app", "state", "stage", "progress", "error", "resubmittable",
                "frames", "created_at", "updated_at", "finished_at", "settings")
        return {k: getattr(self, k) for k in keys}


def new_job_id() -> str:
    """A job id that is unique across replicas and restarts."""
    return uuid.uuid4().hex


class ResultsStore:
    """Job records and output files on any filesystem pyarrow understands.

    `uri` is a local path (default) or a URI such as ``s3://bucket/prefix`` or
    ``gs://bucket/prefix``, resolved with `pyarrow.fs.FileSystem.from_uri`.
    """

    def __init__(self, uri: str | Path):
        uri = str(uri)
        if "://" not in uri:
            local = Path(uri).expanduser().resolve()
            local.mkdir(parents=True, exist_ok=True)
            uri = local.as_uri()
        self.uri = uri
        self.fs, self.root = pafs.FileSystem.from_uri(uri)
        self.root = self.root.rstrip("/")
        self.fs.create_dir(self.root, recursive=True)

    def _dir(self, app: str, job_id: str) -> str:
        return f"{self.root}/{app}/{job_id}"

    def path(self, app: str, job_id: str, name: str) -> str:
        """The store path of one output file of a job."""
        return f"{self._dir(app, job_id)}/{name}"

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write a file atomically where the filesystem allows (temporary name, then move)."""
        parent = path.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with self.fs.open_output_stream(tmp) as out:
            out.write(data)
        try:
            self.fs.move(tmp, path)
        except OSError:  # object stores without rename: write in place
            with self.fs.open_output_stream(path) as out:
                out.write(data)
            self.fs.delete_file(tmp)

    def put_file(self, path: str, local: str | Path) -> None:
        """Copy a local file (a rendered mp4) into the store."""
        self.put_bytes(path, Path(local).read_bytes())

    def get_bytes(self, path: str) -> bytes | None:
        """A file's bytes, or None when it does not exist."""
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(path) as src:
            return src.read()

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.File

    def save(self, record: JobRecord) -> None:
        record.updated_at = time.time()
        self.put_bytes(self.path(record.app, record.job_id, "job.json"),
                       json.dumps(asdict(record)).encode())

    def load(self, app: str, job_id: str) -> JobRecord | None:
        if not job_id.isalnum():  # ids are hex; anything else is not ours (and no path tricks)
            return None
        data = self.get_bytes(self.path(app, job_id, "job.json"))
        if data is None:
            return None
        return JobRecord(**json.loads(data))

    def list_jobs(self, app: str) -> list[JobRecord]:
        """Every job record of an app (used at start-up to find interrupted jobs)."""
        selector = pafs.FileSelector(f"{self.root}/{app}", allow_not_found=True)
        records = []
        for info in self.fs.get_file_info(selector):
            if info.type == pafs.FileType.Directory:
                record = self.load(app, info.base_name)
                if record is not None:
                    records.append(record)
        return records
