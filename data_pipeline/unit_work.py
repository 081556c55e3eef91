"""The work on one unit: decode its clips and stream them into its shard, rejects in the footer.

Both the Ray Data tasks (data_pipeline.ray_execution) and a plain loop (benchmarks/data_pipeline.py)
call `write_unit`; with ``--encode`` the same work is cut in two around the encoder actors
(`decode_units`, then `write_encoded`). A task returns one small row per unit, never the frames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from data_pipeline.clips import ClipRejected, ClipSpec, make_clip
from data_pipeline.location import Location
from data_pipeline.shards import BASE_FIELDS, ShardFile, clip_table
from data_pipeline.units import Unit, units_from_table

# what a task returns to the driver: one small row per unit, never the frames
RESULT_SCHEMA = pa.schema([pa.field("unit", pa.int64()), pa.field("shard", pa.string()),
                           pa.field("clips", pa.int64()), pa.field("bytes", pa.int64()),
                           pa.field("rejects", pa.string())])


@dataclass
class UnitResult:
    unit: int
    shard: str
    clips: int
    bytes: int
    rejects: list[dict] = field(default_factory=list)


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
