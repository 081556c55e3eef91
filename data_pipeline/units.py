"""The plan of a run (clips grouped into fixed units, one shard each) and the work on one unit.

The manifest's clips, in manifest order, are cut into consecutive units of `rows_per_shard`
clips. Unit i is always written to ``shards/part-<i>-<digest of its clip ids>.parquet``,
whichever task, node or run writes it, so the same manifest and settings give the same files,
byte for byte, however the work was scheduled or interrupted: resuming means skipping the units
whose shard exists. A unit's rejected clips are recorded in its shard's footer.

Both the Ray tasks and a plain loop (benchmarks/data_pipeline.py) call `write_unit`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from data_pipeline.clips import ClipRejected, ClipSpec, make_clip
from data_pipeline.shards import BASE_FIELDS, Location, ShardFile, clip_table

# the columns that differ from clip to clip; the sampling settings travel once, as arguments
SPEC_SCHEMA = pa.schema([pa.field("unit", pa.int64()), pa.field("name", pa.string()),
                         pa.field("video", pa.string()), pa.field("caption", pa.string()),
                         pa.field("clip", pa.int64())])
# what a task returns to the driver: one small row per unit, never the frames
RESULT_SCHEMA = pa.schema([pa.field("unit", pa.int64()), pa.field("shard", pa.string()),
                           pa.field("clips", pa.int64()), pa.field("bytes", pa.int64()),
                           pa.field("rejects", pa.string())])
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


@dataclass
class UnitResult:
    unit: int
    shard: str
    clips: int
    bytes: int
    rejects: list[dict] = field(default_factory=list)


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


def reject_row(spec: ClipSpec, exc: ClipRejected) -> dict:
    return {"clip_id": spec.clip_id, "video": spec.video, "caption": spec.caption, "reason": exc.reason,
            "detail": exc.detail}


def write_unit(unit: Unit, out: Location, timeout: float | None, threads: int = 1) -> UnitResult:
    """Decode every clip of a unit and stream it into the unit's shard (one clip in memory at a time)."""
    shard = ShardFile(out, unit.name, encoded=False)
    rejects = []
    for spec in unit.specs:
        try:
            clip = make_clip(spec, timeout=timeout, threads=threads)
        except ClipRejected as exc:
            rejects.append(reject_row(spec, exc))
            continue
        shard.write(clip_table(clip))
    size = shard.close(rejects)
    return UnitResult(unit.index, shard.path, shard.rows, size, rejects)


def results_table(results: list[UnitResult]) -> pa.Table:
    return pa.Table.from_pylist([{"unit": r.unit, "shard": r.shard, "clips": r.clips, "bytes": r.bytes,
                                  "rejects": json.dumps(r.rejects)} for r in results], schema=RESULT_SCHEMA)


def decode_and_write(table: pa.Table, sampling: dict, out: Location, timeout: float | None,
                     threads: int) -> pa.Table:
    """Ray Data UDF, one call per block: write each unit of the block; return one small row per unit."""
    return results_table([write_unit(u, out, timeout, threads) for u in units_from_table(table, sampling)])


# --encode: decode tasks -> encoder actors -> write tasks; the unit travels with each row
DECODED_SCHEMA = pa.schema(BASE_FIELDS + [pa.field("unit", pa.int64()), pa.field("name", pa.string()),
                                          pa.field("reason", pa.string()), pa.field("detail", pa.string())])


def decode_units(table: pa.Table, sampling: dict, timeout: float | None, threads: int) -> pa.Table:
    """Ray Data UDF for ``--encode``: decoded clips, and rejects as rows with a reason, for the encoders."""
    parts = []
    for unit in units_from_table(table, sampling):
        where = {"unit": unit.index, "name": unit.name}
        for spec in unit.specs:
            try:
                clip = clip_table(make_clip(spec, timeout=timeout, threads=threads))
            except ClipRejected as exc:
                parts.append(pa.Table.from_pylist([{**reject_row(spec, exc), **where}], schema=DECODED_SCHEMA))
                continue
            extra = {**where, "reason": None, "detail": None}
            for f in DECODED_SCHEMA:
                if f.name in extra:
                    clip = clip.append_column(f, pa.array([extra[f.name]], f.type))
            parts.append(clip.cast(DECODED_SCHEMA))
    return pa.concat_tables(parts) if parts else DECODED_SCHEMA.empty_table()


def write_encoded(table: pa.Table, out: Location) -> pa.Table:
    """Ray Data UDF after the encoders: each unit of the block into its shard, latents included."""
    results = []
    for index, name in dict.fromkeys(zip(table.column("unit").to_pylist(), table.column("name").to_pylist())):
        rows = table.filter(pc.equal(table.column("unit"), index))
        bad = rows.filter(pc.is_valid(rows.column("reason")))
        rejects = bad.select(["clip_id", "video", "caption", "reason", "detail"]).to_pylist()
        shard = ShardFile(out, name, encoded=True)
        shard.write(rows.filter(pc.is_null(rows.column("reason"))))
        size = shard.close(rejects)
        results.append(UnitResult(index, shard.path, shard.rows, size, rejects))
    return results_table(results)
