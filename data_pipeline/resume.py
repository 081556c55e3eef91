"""Resuming into an output folder: its recorded settings must match, and finished units are skipped.

A unit is finished when its shard exists and records no reject worth retrying; a shard that is
not one of this plan's units is superseded (deleted) only when this plan lists all of its clips.
"""

from __future__ import annotations

import json

import pyarrow.fs as pafs

from data_pipeline.clips import ClipSpec
from data_pipeline.config import Config, PipelineError
from data_pipeline.location import Location
from data_pipeline.shards import SHARD_SUFFIX, shard_clip_ids, shard_files, shard_footer
from data_pipeline.units import Unit

SETTINGS_FILE = "settings.json"
# a unit whose shard records one of these rejects is done again by the next run (it may pass then)
RETRIED_REASONS = {"timeout"}


def check_settings(cfg: Config, out: Location) -> None:
    """Refuse to add clips made with other settings to a folder that holds shards; record ours."""
    path = out.path(SETTINGS_FILE)
    wanted = cfg.clip_settings()
    if out.fs.get_file_info(path).type == pafs.FileType.File:
        with out.fs.open_input_stream(path) as f:
            found = json.loads(f.read())
        if found != wanted and shard_files(out):
            diff = ", ".join(f"{k} {found.get(k)} -> {wanted[k]}" for k in wanted if found.get(k) != wanted[k])
            raise PipelineError(f"{cfg.out} holds clips made with other settings ({diff}): rerun with the "
                               f"same settings to resume, or choose a new --out")
    out.fs.create_dir(out.root, recursive=True)
    out.write_json(SETTINGS_FILE, wanted)


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
