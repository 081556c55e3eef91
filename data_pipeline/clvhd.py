"""CLV-HD preprocessing on Ray Data: manifest -> sampled, cropped clips -> optional latents -> shards.

    python -m data_pipeline.clvhd --manifest clips.csv --out /data/clvhd [--encode --models DIR]

The driver reads the manifest and resolves every path against the manifest's own location
(before anything reaches a worker), plans the clips in manifest order and cuts them into fixed
units of ``--rows-per-shard`` clips, one shard each (data_pipeline.units). Ray Data runs one task
per block of whole units; a task decodes its clips one by one (a timeout around each; a bad file
becomes a reject with a reason and the run goes on) and streams them into its units' shards,
returning one small row per unit. With ``--encode`` an actor pool (one per GPU when the cluster
has GPUs) adds VAE latents and CLIP text embeddings before the shards are written. How many
tasks, CPUs and decoder threads is derived from the cluster's resources (data_pipeline.layout);
the Ray Data graph is built in data_pipeline.ray_execution. A rerun on the same ``--out`` skips
the units already written (data_pipeline.resume), and gives the same files as an uninterrupted
run; rejects and the summary are written beside the shards (data_pipeline.report). Locally a
Ray is started; under ``ray job submit`` (``RAY_ADDRESS`` set) the existing cluster is used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter

from data_pipeline.clips import ClipSpec
from data_pipeline.config import Config
from data_pipeline.location import Location
from data_pipeline.manifest import ManifestEntry, read_manifest
from data_pipeline.ray_execution import execute
from data_pipeline.report import TooManyRejects, check_rejects, write_rejects, write_summary
from data_pipeline.resume import check_settings, existing_units
from data_pipeline.shards import remove_partial_shards, shard_files
from data_pipeline.units import plan_units
from inkwalk.errors import InkwalkError

REASON_DUPLICATE = "duplicate"


def absolute(path: str) -> str:
    """A local path made absolute here, on the driver; URIs unchanged. Workers never see a relative path."""
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


def plan_clips(entries: list[ManifestEntry], cfg: Config) -> list[ClipSpec]:
    """Every clip the manifest asks for: `clips_per_video` per video, in manifest order."""
    return [ClipSpec(e.video, e.caption, k, cfg.clips_per_video, cfg.frames, cfg.stride, cfg.size, cfg.seed)
            for e in entries for k in range(cfg.clips_per_video)]


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
    check_settings(cfg, out)
    remove_partial_shards(out)
    done, superseded = existing_units(out, units, specs)
    for path in superseded:
        out.fs.delete_file(path)
    todo = [u for u in units if u.index not in done]

    results, layout, ray_start_s = execute(todo, cfg, out) if todo else ({}, None, 0.0)
    elapsed = time.perf_counter() - started
    written = {i: (clips, rej) for i, (clips, _, rej) in results.items()}
    for unit in units:  # rejects in plan order, whichever run found them
        for r in {**done, **written}.get(unit.index, (0, []))[1]:
            rejects.append({**r, "manifest_line": line_of.get(r["video"])})
    write_rejects(out, rejects)
    files = shard_files(out)
    clips_this_run = sum(c for c, _, _ in results.values())
    decoded = clips_this_run + sum(len(r) for _, _, r in results.values())
    processing = elapsed - ray_start_s
    summary = {
        "manifest": manifest,
        "out": cfg.out if cfg.filesystem else absolute(cfg.out),
        "settings": cfg.clip_settings(),
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
    write_summary(out, summary)
    check_rejects(cfg.max_rejected, summary, rejects)
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
