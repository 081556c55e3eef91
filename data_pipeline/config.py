"""The settings of one preprocessing run and their checks, made before any work starts."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.fs as pafs

from inkwalk.errors import InkwalkError

# Settings that change what the shards hold: a rerun must use the same ones to resume.
CLIP_SETTINGS = ("frames", "stride", "size", "clips_per_video", "seed", "encode", "rows_per_shard")


class PipelineError(InkwalkError):
    """A run that cannot start or finish because of its arguments, output folder or models."""


@dataclass
class Config:
    manifest: str
    out: str
    frames: int = 8
    stride: int = 4
    size: int = 256
    clips_per_video: int = 1
    seed: int = 0
    encode: bool = False
    models: str | None = None
    timeout: float = 60.0
    video_root: str | None = None
    rows_per_shard: int = 16
    max_rejected: float = 0.5
    # machine-dependent: None = derived from the cluster's resources (data_pipeline.layout)
    cpus_per_task: float | None = None
    decode_threads: int | None = None
    tasks: int | None = None
    encoders: int | None = None
    gpus_per_encoder: float | None = None
    cpus_per_encoder: float = 1.0
    address: str | None = None
    num_cpus: int | None = None
    # library use only: `out` is a path inside this pyarrow filesystem (e.g. a SubTreeFileSystem)
    filesystem: pafs.FileSystem | None = None

    def validate(self) -> None:
        if self.frames < 1 or self.stride < 1 or self.clips_per_video < 1:
            raise PipelineError("--frames, --stride and --clips-per-video must be at least 1")
        if self.size < 8:
            raise PipelineError(f"--size {self.size} is too small: use at least 8 pixels")
        if self.encode and self.size % 8:
            raise PipelineError(f"--size {self.size} must be a multiple of 8 with --encode (the VAE downsamples by 8)")
        if self.timeout is not None and self.timeout <= 0:
            raise PipelineError("--timeout must be positive (seconds per clip)")
        if self.cpus_per_task is not None and not 0 < self.cpus_per_task:
            raise PipelineError("--cpus-per-task must be positive (fractions like 0.5 are fine)")
        if self.rows_per_shard < 1:
            raise PipelineError("--rows-per-shard must be at least 1")
        if not 0 <= self.max_rejected <= 1:
            raise PipelineError(f"--max-rejected {self.max_rejected} must be a fraction between 0 and 1")
        for name in ("decode_threads", "tasks"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise PipelineError(f"--{name.replace('_', '-')} must be at least 1")

    def clip_settings(self) -> dict:
        """The settings recorded next to the shards (CLIP_SETTINGS), which a resuming run must match."""
        return {k: getattr(self, k) for k in CLIP_SETTINGS}
