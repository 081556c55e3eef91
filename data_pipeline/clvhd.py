"""CLV-HD preprocessing on Ray Data: manifest -> sampled, cropped clips -> optional latents -> shards.

    python -m data_pipeline.clvhd --manifest clips.csv --out /data/clvhd [--encode --models DIR]

One Ray Data row is one *clip* (never one frame). Decoding runs in fractional-CPU tasks with a
timeout around each clip; a bad file becomes a reject (path, reason) and the run goes on.
With ``--encode`` an actor pool (one per GPU when the cluster has GPUs) adds VAE latents and
CLIP text embeddings. Each task writes its own clips into its own Parquet shard (atomically:
temporary name, then rename) and sends the driver only small rows (clip id, shard, bytes, or a
reject's reason), so compression and writing run in parallel and memory stays bounded by Ray
Data's backpressure whatever the dataset size. A rerun on the same ``--out``
skips every clip already in a complete shard. Locally a Ray is started; under
``ray job submit`` (``RAY_ADDRESS`` set) the existing cluster is used.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import posixpath
import re
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from data_pipeline.clips import ClipRejected, ClipSpec, make_clip
from data_pipeline.manifest import read_manifest
from data_pipeline.shards import (BASE_FIELDS, filesystem, remove_partial_shards, shard_files, write_shard,
                                  written_clip_ids)
from inkwalk.errors import InkwalkError

DECODED_SCHEMA = pa.schema(BASE_FIELDS + [pa.field("reason", pa.string()), pa.field("detail", pa.string())])
# what a writing task returns to the driver per clip: no tensors, only where the clip went
RESULT_SCHEMA = pa.schema([pa.field("clip_id", pa.string()), pa.field("video", pa.string()),
                           pa.field("caption", pa.string()), pa.field("reason", pa.string()),
                           pa.field("detail", pa.string()), pa.field("shard", pa.string()),
                           pa.field("shard_bytes", pa.int64())])
REASON_DUPLICATE = "duplicate"


class PipelineError(InkwalkError):
    """A run that cannot start or finish because of its arguments, output folder or models."""


SETTINGS_FILE = "settings.json"
REJECTS_FILE = "rejects.jsonl"
SUMMARY_FILE = "summary.json"
# Settings that change what a clip is: a rerun must use the same ones to resume.
CLIP_SETTINGS = ("frames", "stride", "size", "clips_per_video", "seed", "encode")


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
    cpus_per_task: float = 0.5
    clips_per_task: int = 4
    encoders: int | None = None
    gpus_per_encoder: float | None = None
    cpus_per_encoder: float = 1.0
    encode_batch: int = 4
    rows_per_shard: int = 128
    address: str | None = None
    num_cpus: int | None = None

    def validate(self) -> None:
        if self.frames < 1 or self.stride < 1 or self.clips_per_video < 1:
            raise PipelineError("--frames, --stride and --clips-per-video must be at least 1")
        if self.size < 8:
            raise PipelineError(f"--size {self.size} is too small: use at least 8 pixels")
        if self.encode and self.size % 8:
            raise PipelineError(f"--size {self.size} must be a multiple of 8 with --encode (the VAE downsamples by 8)")
        if self.timeout is not None and self.timeout <= 0:
            raise PipelineError("--timeout must be positive (seconds per clip)")
        if not 0 < self.cpus_per_task:
            raise PipelineError("--cpus-per-task must be positive (fractions like 0.5 are fine)")


def decode_batch(table: pa.Table, timeout: float | None) -> pa.Table:
    """Ray Data UDF: clip specs in, decoded clips (or rejects with a reason) out."""
    rows = []
    for spec_row in table.to_pylist():
        spec = ClipSpec(**{k: spec_row[k] for k in ClipSpec.__dataclass_fields__})
        try:
            clip = make_clip(spec, timeout=timeout)
        except ClipRejected as exc:
            rows.append({"clip_id": spec.clip_id, "video": spec.video, "caption": spec.caption,
                         "reason": exc.reason, "detail": exc.detail})
            continue
        frames = clip.pop("frames")
        rows.append({**clip, "indices": clip["indices"].tolist(), "frames": frames.tobytes(),
                     "shape": list(frames.shape), "reason": None, "detail": None})
    return pa.Table.from_pylist(rows, schema=DECODED_SCHEMA)


def write_batch(table: pa.Table, out: str, prefix: str, encoded: bool, rows_per_shard: int) -> pa.Table:
    """Ray Data UDF: write this batch's good clips into shards of its own (at most `rows_per_shard`
    clips each, named `prefix` + a random id so no two tasks or runs collide); return small result rows."""
    good = table.filter(pc.is_null(table.column("reason")))
    shard_of: list[str | None] = [None] * good.num_rows
    size_of: list[int | None] = [None] * good.num_rows
    for offset in range(0, good.num_rows, rows_per_shard):
        part = good.slice(offset, rows_per_shard)
        path, size = write_shard(part, out, f"{prefix}-{uuid.uuid4().hex[:16]}", encoded)
        shard_of[offset:offset + part.num_rows] = [path] * part.num_rows
        size_of[offset:offset + part.num_rows] = [size] * part.num_rows
    columns = ["clip_id", "video", "caption", "reason", "detail"]
    written = good.select(columns).append_column("shard", pa.array(shard_of, pa.string())) \
        .append_column("shard_bytes", pa.array(size_of, pa.int64()))
    bad = table.filter(pc.is_valid(table.column("reason"))).select(columns)
    bad = bad.append_column("shard", pa.nulls(bad.num_rows, pa.string())) \
        .append_column("shard_bytes", pa.nulls(bad.num_rows, pa.int64()))
    return pa.concat_tables([written.cast(RESULT_SCHEMA), bad.cast(RESULT_SCHEMA)])


def decode_and_write(table: pa.Table, timeout: float | None, out: str, prefix: str,
                     rows_per_shard: int) -> pa.Table:
    """Ray Data UDF: decode clip specs and write the good clips in the same task (no frames leave it)."""
    return write_batch(decode_batch(table, timeout), out, prefix, False, rows_per_shard)


def plan_clips(entries, cfg: Config) -> list[ClipSpec]:
    """Every clip the manifest asks for: `clips_per_video` per video."""
    return [ClipSpec(e.video, e.caption, k, cfg.clips_per_video, cfg.frames, cfg.stride, cfg.size, cfg.seed)
            for e in entries for k in range(cfg.clips_per_video)]


def connect(cfg: Config) -> bool:
    """Use the running Ray (``RAY_ADDRESS`` / ``--address``) or start a local one; True if started here."""
    import ray

    if ray.is_initialized():
        return False
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        root = str(Path(__file__).resolve().parents[1])
        pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        ray.init(num_cpus=cfg.num_cpus, include_dashboard=False,
                 runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    return True


def _check_settings(cfg: Config) -> None:
    fs, root = filesystem(cfg.out)
    path = posixpath.join(root, SETTINGS_FILE)
    wanted = {k: getattr(cfg, k) for k in CLIP_SETTINGS}
    if fs.get_file_info(path).type == pafs.FileType.File:
        with fs.open_input_stream(path) as f:
            found = json.loads(f.read())
        if found != wanted and shard_files(cfg.out):
            diff = ", ".join(f"{k} {found.get(k)} -> {wanted[k]}" for k in wanted if found.get(k) != wanted[k])
            raise PipelineError(f"{cfg.out} holds clips made with other settings ({diff}): rerun with the "
                               f"same settings to resume, or choose a new --out")
    fs.create_dir(root, recursive=True)
    _write_json(fs, path, wanted)


def _write_json(fs, path: str, obj) -> None:
    with fs.open_output_stream(path) as f:
        f.write(json.dumps(obj, indent=2).encode())


def _next_prefix(out: str) -> str:
    """A shard name prefix no earlier run used, so a resumed run never overwrites a shard."""
    runs = {posixpath.basename(p).split("-")[1] for p in shard_files(out) if posixpath.basename(p).count("-") >= 2}
    n = 0
    while f"r{n:03d}" in runs:
        n += 1
    return f"part-r{n:03d}"


def _user_error(exc: BaseException) -> InkwalkError | None:
    """The InkwalkError a Ray worker raised, found inside Ray's wrappers, as a plain one-line error.

    An actor that fails in ``__init__`` reaches the driver as ActorDiedError, which keeps the
    original error only as text: the encoder's EncoderSetupError line is taken from it.
    """
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, InkwalkError):
            return PipelineError(current.args[0] if current.args else str(current))
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    found = re.findall(r"EncoderSetupError: (.+)", str(exc))
    return PipelineError(found[-1]) if found else None


def build_dataset(specs: list[ClipSpec], cfg: Config, prefix: str):
    """The lazy Ray Data pipeline: specs -> decode tasks -> (encoder actor pool) -> shards written by tasks."""
    import ray
    import ray.data

    blocks = max(1, math.ceil(len(specs) / cfg.clips_per_task))
    ds = ray.data.from_items([s.to_row() for s in specs], override_num_blocks=blocks)
    if not cfg.encode:
        return ds.map_batches(decode_and_write, batch_format="pyarrow", batch_size=None,
                              num_cpus=cfg.cpus_per_task,
                              fn_kwargs={"timeout": cfg.timeout, "out": cfg.out, "prefix": prefix,
                                         "rows_per_shard": cfg.rows_per_shard})
    ds = ds.map_batches(decode_batch, batch_format="pyarrow", batch_size=None, num_cpus=cfg.cpus_per_task,
                        fn_kwargs={"timeout": cfg.timeout})
    if cfg.encode:
        from data_pipeline.encode import ClipEncoder

        gpus = cfg.gpus_per_encoder
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        encoders = cfg.encoders or max(1, int(ray.cluster_resources().get("GPU", 0) // gpus) if gpus else 1)
        ds = ds.map_batches(ClipEncoder, batch_format="pyarrow", batch_size=cfg.encode_batch,
                            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=encoders),
                            num_cpus=cfg.cpus_per_encoder, num_gpus=gpus,
                            fn_constructor_kwargs={"models_dir": cfg.models})
    # written after the encoder so the shards hold the latents; frames travel only task -> actor -> task
    return ds.map_batches(write_batch, batch_format="pyarrow", batch_size=None, num_cpus=cfg.cpus_per_task,
                          fn_kwargs={"out": cfg.out, "prefix": prefix, "encoded": True,
                                     "rows_per_shard": cfg.rows_per_shard})


def run(cfg: Config) -> dict:
    """Process a manifest into shards under `cfg.out`; returns the summary (also written there)."""
    from inkwalk.progress import progress

    cfg.validate()
    entries, manifest_rejects = read_manifest(cfg.manifest, cfg.video_root)
    _check_settings(cfg)
    remove_partial_shards(cfg.out)
    done = written_clip_ids(cfg.out)
    rejects = [dict(video=r.video, caption=r.caption, clip_id=None, reason=r.reason, detail=r.detail,
                    manifest_line=r.line) for r in manifest_rejects]
    line_of: dict[str, int] = {}
    unique = []
    for e in entries:  # a video listed twice would give the same clip ids twice
        if e.video in line_of:
            rejects.append(dict(video=e.video, caption=e.caption, clip_id=None, reason=REASON_DUPLICATE,
                                detail=f"same video as manifest line {line_of[e.video]}", manifest_line=e.line))
        else:
            line_of[e.video] = e.line
            unique.append(e)
    specs = plan_clips(unique, cfg)
    todo = [s for s in specs if s.clip_id not in done]
    n_planning_rejects = len(rejects)

    started = time.perf_counter()
    prefix = _next_prefix(cfg.out)
    rows_written = 0
    shard_bytes: dict[str, int] = {}
    we_started, ray_start_s = False, 0.0
    if todo:
        we_started = connect(cfg)
        ray_start_s = time.perf_counter() - started
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = os.environ.get("INKWALK_NO_PROGRESS") != "1"
        ds = build_dataset(todo, cfg, prefix)
        bar = progress(total=len(todo), desc="clips", unit="clip")
        try:
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                for path, size in zip(batch.column("shard").to_pylist(), batch.column("shard_bytes").to_pylist()):
                    if path is not None:
                        rows_written += 1
                        shard_bytes[path] = size
                for row in batch.filter(pc.is_valid(batch.column("reason"))).select(
                        ["video", "caption", "clip_id", "reason", "detail"]).to_pylist():
                    rejects.append({**row, "manifest_line": line_of.get(row["video"])})
                bar.update(batch.num_rows)
        except Exception as exc:
            user_error = _user_error(exc)
            if user_error is None:
                raise
            raise user_error from None
        finally:
            bar.close()
            if we_started:
                ray.shutdown()
    elapsed = time.perf_counter() - started
    processing = elapsed - ray_start_s

    fs, root = filesystem(cfg.out)
    with fs.open_output_stream(posixpath.join(root, REJECTS_FILE)) as f:
        f.write("".join(json.dumps(r) + "\n" for r in rejects).encode())
    files = shard_files(cfg.out)
    summary = {
        "manifest": cfg.manifest,
        "out": cfg.out,
        "settings": {k: getattr(cfg, k) for k in CLIP_SETTINGS},
        "manifest_rows": len(entries) + len(manifest_rejects),
        "clips_planned": len(specs),
        "clips_already_written": len(specs) - len(todo),
        "clips_written": rows_written,
        "clips_total": len(done) + rows_written,
        "rejected": len(rejects),
        "rejects_by_reason": dict(Counter(r["reason"] for r in rejects)),
        "seconds": round(elapsed, 3),
        "ray_start_s": round(ray_start_s, 3),
        # throughput of the pipeline itself: clips decoded (written or rejected) per second, Ray start excluded
        "clips_per_s": round((rows_written + len(rejects) - n_planning_rejects) / processing, 3)
        if processing > 0 else None,
        "bytes_written": sum(shard_bytes.values()),
        "bytes_total": sum(fs.get_file_info(p).size for p in files),
        "shards": len(files),
    }
    _write_json(fs, posixpath.join(root, SUMMARY_FILE), summary)
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_pipeline.clvhd", description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", required=True, help="CSV/JSONL with video,caption (or videoid,name,page_dir)")
    p.add_argument("--out", required=True, help="output folder or URI (shards/, rejects.jsonl, summary.json)")
    p.add_argument("--frames", type=int, default=8, help="frames per clip (paper: 8)")
    p.add_argument("--stride", type=int, default=4, help="sampling stride in source frames (paper: 4)")
    p.add_argument("--size", type=int, default=256, help="short side resize + centre crop (paper: 256)")
    p.add_argument("--clips-per-video", type=int, default=1, help="clips spread over each video")
    p.add_argument("--seed", type=int, default=0, help="seed of each clip's start frame")
    p.add_argument("--encode", action="store_true", help="also cache SD 1.5 VAE latents and CLIP text embeddings")
    p.add_argument("--models", default=None, help="local models folder (else env INKWALK_MODELS / the hub)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed to decode one clip")
    p.add_argument("--video-root", default=None, help="folder relative video paths start from (default: the manifest's)")
    p.add_argument("--cpus-per-task", type=float, default=0.5, help="Ray CPUs per decode task (fractional is fine)")
    p.add_argument("--clips-per-task", type=int, default=4, help="clips decoded by one Ray task")
    p.add_argument("--encoders", type=int, default=None, help="max encoder actors (default: one per GPU, or 1)")
    p.add_argument("--gpus-per-encoder", type=float, default=None, help="default: 1 if the cluster has GPUs, else 0")
    p.add_argument("--cpus-per-encoder", type=float, default=1.0,
                   help="Ray CPUs per encoder actor; differs from --cpus-per-task so decoding stays in parallel tasks")
    p.add_argument("--encode-batch", type=int, default=4, help="clips per encoder call")
    p.add_argument("--rows-per-shard", type=int, default=128, help="at most this many clips per Parquet shard (each task writes its own shards, "
                        "so a shard holds at most --clips-per-task clips)")
    p.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = Config(**{k: v for k, v in vars(args).items()})
    try:
        summary = run(cfg)
    except InkwalkError as exc:
        print(f"clvhd: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"clvhd: interrupted; rerun the same command to resume into {cfg.out}", file=sys.stderr)
        return 130
    print(json.dumps({k: summary[k] for k in ("clips_written", "clips_total", "rejected", "rejects_by_reason",
                                              "clips_per_s", "bytes_written")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
