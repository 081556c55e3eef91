"""CLV-HD preprocessing on Ray Data: manifest -> sampled, cropped clips -> optional latents -> shards.

    python -m data_pipeline.clvhd --manifest clips.csv --out /data/clvhd [--encode --models DIR]

The driver reads the manifest and resolves every path against the manifest's own location
(before anything reaches a worker), plans the clips in manifest order and cuts them into fixed
units of ``--rows-per-shard`` clips, one shard each (data_pipeline.units). Ray Data runs one task
per block of whole units; a task decodes its clips one by one (a timeout around each; a bad file
becomes a reject with a reason and the run goes on) and streams them into its units' shards,
returning one small row per unit. With ``--encode`` an actor pool (one per GPU when the cluster
has GPUs) adds VAE latents and CLIP text embeddings before the shards are written. How many
tasks, CPUs and decoder threads is derived from the cluster's resources (data_pipeline.layout).
A rerun on the same ``--out`` skips the units already written, and gives the same files as an
uninterrupted run. Locally a Ray is started; under ``ray job submit`` (``RAY_ADDRESS`` set) the
existing cluster is used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from data_pipeline.clips import ClipSpec
from data_pipeline.layout import Layout, derive_layout, node_cpus, split_evenly
from data_pipeline.manifest import read_manifest
from data_pipeline.shards import (SHARD_SUFFIX, Location, remove_partial_shards, shard_clip_ids, shard_files,
                                  shard_footer)
from data_pipeline.units import (Unit, decode_and_write, decode_units, plan_units, sampling_of, units_table,
                                 write_encoded)
from inkwalk.errors import InkwalkError

REASON_DUPLICATE = "duplicate"
# a unit whose shard records one of these rejects is done again by the next run (it may pass then)
RETRIED_REASONS = {"timeout"}


class PipelineError(InkwalkError):
    """A run that cannot start or finish because of its arguments, output folder or models."""


class TooManyRejects(PipelineError):
    """Every clip, or more than ``--max-rejected`` of them, was rejected; `summary` says which and why."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


SETTINGS_FILE = "settings.json"
REJECTS_FILE = "rejects.jsonl"
SUMMARY_FILE = "summary.json"
# Settings that change what the shards hold: a rerun must use the same ones to resume.
CLIP_SETTINGS = ("frames", "stride", "size", "clips_per_video", "seed", "encode", "rows_per_shard")


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


def absolute(path: str) -> str:
    """A local path made absolute here, on the driver; URIs unchanged. Workers never see a relative path."""
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


def plan_clips(entries, cfg: Config) -> list[ClipSpec]:
    """Every clip the manifest asks for: `clips_per_video` per video, in manifest order."""
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


def _check_settings(cfg: Config, out: Location) -> None:
    path = out.path(SETTINGS_FILE)
    wanted = {k: getattr(cfg, k) for k in CLIP_SETTINGS}
    if out.fs.get_file_info(path).type == pafs.FileType.File:
        with out.fs.open_input_stream(path) as f:
            found = json.loads(f.read())
        if found != wanted and shard_files(out):
            diff = ", ".join(f"{k} {found.get(k)} -> {wanted[k]}" for k in wanted if found.get(k) != wanted[k])
            raise PipelineError(f"{cfg.out} holds clips made with other settings ({diff}): rerun with the "
                               f"same settings to resume, or choose a new --out")
    out.fs.create_dir(out.root, recursive=True)
    _write_json(out.fs, path, wanted)


def _write_json(fs, path: str, obj) -> None:
    with fs.open_output_stream(path) as f:
        f.write(json.dumps(obj, indent=2).encode())


def _shard_name(path: str) -> str:
    return path.rsplit("/", 1)[-1][:-len(SHARD_SUFFIX)]


def existing_units(out: Location, units: list[Unit],
                   specs: list[ClipSpec]) -> tuple[dict[int, tuple[int, list]], list[str]]:
    """Units already written ({index: (clips, rejects)}) and shards this plan supersedes.

    A shard that is not one of this plan's units (the manifest grew, so its last unit changed)
    is superseded when all its clips are planned again; one holding clips this manifest no longer
    lists stops the run, so that a rerun never deletes clips the user may still want.
    """
    by_name = {u.name: u for u in units}
    planned = {s.clip_id for s in specs}
    done: dict[int, tuple[int, list]] = {}
    superseded = []
    for path in shard_files(out):
        unit = by_name.get(_shard_name(path))
        if unit is None:
            extra = set(shard_clip_ids(out, path)) - planned
            if extra:
                raise PipelineError(f"{path} holds {len(extra)} clips this manifest does not list (another or an "
                                    f"edited manifest): choose a new --out, or delete that shard to drop them")
            superseded.append(path)
            continue
        clips, rejects = shard_footer(out, path)
        if not any(r["reason"] in RETRIED_REASONS for r in rejects):
            done[unit.index] = (clips, rejects)
    return done, superseded


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


# Ray Data's default backpressure (its resource budgets) starts every execution with one task at
# a time: the cluster's CPUs reach its budget only after a first refresh, up to a second later,
# and later tasks start a scheduling step apart. Without --encode the tasks return a few bytes per
# unit and write the frames themselves, so there is nothing to hold back: the budgets are turned
# off for that dataset (on 2 idle cores, 8 tasks of 0.5 s: 3.1 s with them, 2.1 s without).
BACKPRESSURE_POLICIES = "backpressure_policies.enabled"
_UNSET = object()


@contextmanager
def _new_datasets_with(config: dict, **attributes):
    """DataContext settings for the datasets created inside (each copies the current context)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    saved_config = {k: ctx.get_config(k, _UNSET) for k in config}
    saved_attributes = {k: getattr(ctx, k) for k in attributes}
    for k, v in config.items():
        ctx.set_config(k, v)
    for k, v in attributes.items():
        setattr(ctx, k, v)
    try:
        yield
    finally:
        for k, v in saved_config.items():
            ctx.remove_config(k) if v is _UNSET else ctx.set_config(k, v)
        for k, v in saved_attributes.items():
            setattr(ctx, k, v)


def build_dataset(units: list[Unit], layout: Layout, cfg: Config, out: Location):
    """The lazy Ray Data pipeline: one block of whole units per task -> (encoder actors) -> shards.

    Each block is an Arrow table of clip specs; each task streams its units' clips into their
    shards and returns one small row per unit, so no frames reach the driver.
    """
    import ray
    import ray.data

    sampling = sampling_of(units[0].specs[0])
    blocks = [units_table([units[i] for i in part]) for part in split_evenly(len(units), layout.tasks)]
    decode_args = {"sampling": sampling, "timeout": cfg.timeout, "threads": layout.threads}
    if not cfg.encode:
        with _new_datasets_with({BACKPRESSURE_POLICIES: []}):
            ds = ray.data.from_arrow(blocks)
        return ds.map_batches(decode_and_write, batch_format="pyarrow", batch_size=None,
                              num_cpus=layout.cpus_per_task, fn_kwargs={**decode_args, "out": out})
    from data_pipeline.encode import ClipEncoder

    gpus = cfg.gpus_per_encoder
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    encoders = cfg.encoders or max(1, int(ray.cluster_resources().get("GPU", 0) // gpus) if gpus else 1)
    with _new_datasets_with({}, target_max_block_size=None):  # a block is one unit from decoding to writing
        ds = ray.data.from_arrow(blocks)
    ds = ds.map_batches(decode_units, batch_format="pyarrow", batch_size=None, num_cpus=layout.cpus_per_task,
                        fn_kwargs=decode_args)
    ds = ds.map_batches(ClipEncoder, batch_format="pyarrow", batch_size=None,
                        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=encoders),
                        num_cpus=cfg.cpus_per_encoder, num_gpus=gpus, fn_constructor_kwargs={"models_dir": cfg.models})
    # written after the encoder so the shards hold the latents; frames travel only task -> actor -> task
    return ds.map_batches(write_encoded, batch_format="pyarrow", batch_size=None, num_cpus=layout.cpus_per_task,
                          fn_kwargs={"out": out})


def _execute(units: list[Unit], cfg: Config, out: Location) -> tuple[dict[int, tuple[int, int, list]], dict, float]:
    """Run the units on Ray: ({index: (clips, bytes, rejects)}, the layout used, Ray start seconds)."""
    from inkwalk.progress import progress

    t0 = time.perf_counter()
    we_started = connect(cfg)
    ray_start_s = time.perf_counter() - t0
    import ray
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = os.environ.get("INKWALK_NO_PROGRESS") != "1"
    results: dict[int, tuple[int, int, list]] = {}
    size_of = {u.index: len(u.specs) for u in units}
    bar = progress(total=sum(size_of.values()), desc="clips", unit="clip")
    try:
        layout = derive_layout(node_cpus(), len(units), cfg.encode, cfg.cpus_per_task, cfg.decode_threads, cfg.tasks)
        for batch in build_dataset(units, layout, cfg, out).iter_batches(batch_format="pyarrow", batch_size=None):
            for row in batch.to_pylist():
                results[row["unit"]] = (row["clips"], row["bytes"], json.loads(row["rejects"]))
                bar.update(size_of[row["unit"]])
    except Exception as exc:
        user_error = _user_error(exc)
        if user_error is None:
            raise
        raise user_error from None
    finally:
        bar.close()
        if we_started:
            ray.shutdown()
    return results, layout.as_dict(), ray_start_s


def _check_rejects(cfg: Config, summary: dict, rejects: list[dict]) -> None:
    bad, good = summary["rejected"], summary["clips_total"]
    if bad == 0 or (good > 0 and bad / (bad + good) <= cfg.max_rejected):
        return
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary["rejects_by_reason"].items(), key=lambda kv: -kv[1]))
    first = rejects[0]
    what = "every clip was rejected" if good == 0 else \
        f"{bad} of {bad + good} clips and manifest rows rejected ({100 * bad / (bad + good):.0f} % > --max-rejected " \
        f"{100 * cfg.max_rejected:g} %)"
    raise TooManyRejects(f"{what}: {reasons}; first: {first['video'] or 'line ' + str(first['manifest_line'])}: "
                         f"{first['detail']} (all in {summary['out'].rstrip('/')}/{REJECTS_FILE})", summary)


def run(cfg: Config) -> dict:
    """Process a manifest into shards under `cfg.out`; returns the summary (also written there).

    Raises `TooManyRejects` (after writing the summary) when every clip, or more than
    `cfg.max_rejected` of them, was rejected.
    """
    cfg.validate()
    started = time.perf_counter()
    manifest = absolute(cfg.manifest)
    out = Location.of(cfg.out if cfg.filesystem else absolute(cfg.out), cfg.filesystem)
    entries, manifest_rejects = read_manifest(manifest, absolute(cfg.video_root) if cfg.video_root else None)
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
    rejects.sort(key=lambda r: r["manifest_line"])
    specs = plan_clips(unique, cfg)
    units = plan_units(specs, cfg.rows_per_shard)
    _check_settings(cfg, out)
    remove_partial_shards(out)
    done, superseded = existing_units(out, units, specs)
    for path in superseded:
        out.fs.delete_file(path)
    todo = [u for u in units if u.index not in done]

    results, layout, ray_start_s = _execute(todo, cfg, out) if todo else ({}, None, 0.0)
    elapsed = time.perf_counter() - started
    written = {i: (clips, rej) for i, (clips, _, rej) in results.items()}
    for unit in units:  # rejects in plan order, whichever run found them
        for r in {**done, **written}.get(unit.index, (0, []))[1]:
            rejects.append({**r, "manifest_line": line_of.get(r["video"])})
    with out.fs.open_output_stream(out.path(REJECTS_FILE)) as f:
        f.write("".join(json.dumps(r) + "\n" for r in rejects).encode())
    files = shard_files(out)
    clips_this_run = sum(c for c, _, _ in results.values())
    decoded = clips_this_run + sum(len(r) for _, _, r in results.values())
    processing = elapsed - ray_start_s
    summary = {
        "manifest": manifest,
        "out": cfg.out if cfg.filesystem else absolute(cfg.out),
        "settings": {k: getattr(cfg, k) for k in CLIP_SETTINGS},
        "layout": layout,
        "manifest_rows": len(entries) + len(manifest_rejects),
        "clips_planned": len(specs),
        "units": len(units),
        "clips_already_written": sum(c for c, _ in done.values()),
        "clips_written": clips_this_run,
        "clips_total": sum(c for c, _ in done.values()) + clips_this_run,
        "rejected": len(rejects),
        "rejects_by_reason": dict(Counter(r["reason"] for r in rejects)),
        "shards_superseded": len(superseded),
        "seconds": round(elapsed, 3),
        "ray_start_s": round(ray_start_s, 3),
        # throughput of the pipeline itself: clips decoded (written or rejected) per second, Ray start excluded
        "clips_per_s": round(decoded / processing, 3) if decoded and processing > 0 else None,
        "bytes_written": sum(b for _, b, _ in results.values()),
        "bytes_total": sum(out.fs.get_file_info(p).size for p in files),
        "shards": len(files),
    }
    _write_json(out.fs, out.path(SUMMARY_FILE), summary)
    _check_rejects(cfg, summary, rejects)
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
    p.add_argument("--rows-per-shard", type=int, default=16,
                   help="clips per shard: the plan's fixed unit of work and of resume (default 16, about 11 MB)")
    p.add_argument("--max-rejected", type=float, default=0.5,
                   help="exit with an error when more than this fraction of clips is rejected (default 0.5; "
                        "a run where every clip is rejected always fails)")
    derived = p.add_argument_group("machine-dependent settings (default: derived from the cluster's resources)")
    derived.add_argument("--cpus-per-task", type=float, default=None,
                         help="Ray CPUs per decode task (default 1, more when there are fewer units than CPUs; "
                              "0.5 with --encode)")
    derived.add_argument("--decode-threads", type=int, default=None, help="decord threads per decode (default: "
                         "the task's CPUs)")
    derived.add_argument("--tasks", type=int, default=None, help="Ray Data blocks = decode tasks (default: 4 per "
                         "decode slot, whole units each)")
    derived.add_argument("--encoders", type=int, default=None, help="max encoder actors (default: one per GPU, or 1)")
    derived.add_argument("--gpus-per-encoder", type=float, default=None,
                         help="default: 1 if the cluster has GPUs, else 0")
    derived.add_argument("--cpus-per-encoder", type=float, default=1.0,
                         help="Ray CPUs per encoder actor; differs from --cpus-per-task so decoding stays in "
                              "parallel tasks")
    p.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    return p


SHOWN = ("clips_written", "clips_total", "rejected", "rejects_by_reason", "clips_per_s", "bytes_written")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = Config(**vars(args))
    try:
        summary = run(cfg)
    except TooManyRejects as exc:
        print(json.dumps({k: exc.summary[k] for k in SHOWN}))
        print(f"clvhd: error: {exc}", file=sys.stderr)
        return 1
    except InkwalkError as exc:
        print(f"clvhd: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"clvhd: interrupted; rerun the same command to resume into {cfg.out}", file=sys.stderr)
        return 130
    print(json.dumps({k: summary[k] for k in SHOWN}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
