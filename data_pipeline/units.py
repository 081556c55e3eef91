"""The plan of a run: clips grouped into fixed units, one shard each, and how a unit travels to a task.

The manifest's clips, in manifest order, are cut into consecutive units of `rows_per_shard`
clips. Unit i is always written to ``shards/part-<i>-<digest of its clip ids>.parquet``,
whichever task, node or run writes it, so the same manifest and settings give the same files,
byte for byte, however the work was scheduled or interrupted: resuming means skipping the units
whose shard exists. A unit's rejected clips are recorded in its shard's footer.

What a task does with its units is in data_pipeline.unit_work.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa

from data_pipeline.clips import ClipSpec

# the columns that differ from clip to clip; the sampling settings travel once, as arguments
SPEC_SCHEMA = pa.schema([pa.field("unit", pa.int64()), pa.field("name", pa.string()),
                         pa.field("video", pa.string()), pa.field("caption", pa.string()),
                         pa.field("clip", pa.int64())])
SAMPLING = ("clips_per_video", "frames", "stride", "size", "seed")


@dataclass(frozen=True)
class Unit:
    """Consecutive clips of the plan that always go into one shard together."""

    index: int
    specs: tuple[ClipSpec, ...]

    @property
    def name(self) -> str:
        digest = hashlib.sha1(",".join(s.clip_id for s in self.specs).encode()).hexdigest()[:12]
        return f"part-{self.index:05d}-{digest}"


def plan_units(specs: list[ClipSpec], rows_per_shard: int) -> list[Unit]:
    """Cut the plan into units of `rows_per_shard` clips, in plan order."""
    return [Unit(i // rows_per_shard, tuple(specs[i:i + rows_per_shard])) for i in range(0, len(specs), rows_per_shard)]


def sampling_of(spec: ClipSpec) -> dict:
    """The settings every clip of a run shares (sent once per task, not once per row)."""
    return {k: getattr(spec, k) for k in SAMPLING}


def units_table(units: list[Unit]) -> pa.Table:
    """The specs of some units as Arrow columns: what a Ray task receives."""
    rows = [(u.index, u.name, s.video, s.caption, s.clip) for u in units for s in u.specs]
    columns = list(zip(*rows)) if rows else [[] for _ in SPEC_SCHEMA]
    return pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(columns, SPEC_SCHEMA)], schema=SPEC_SCHEMA)


def units_from_table(table: pa.Table, sampling: dict) -> list[Unit]:
    """The inverse of `units_table`, in a task."""
    groups: dict[int, list[ClipSpec]] = {}
    names: dict[int, str] = {}
    for unit, name, video, caption, clip in zip(*(table.column(n).to_pylist() for n in SPEC_SCHEMA.names)):
        groups.setdefault(unit, []).append(ClipSpec(video, caption, clip=clip, **sampling))
        names[unit] = name
    units = [Unit(i, tuple(specs)) for i, specs in groups.items()]
    for u in units:  # the plan and the task agree on what the unit holds
        assert u.name == names[u.index], f"unit {u.index}: {u.name} != {names[u.index]}"
    return units
