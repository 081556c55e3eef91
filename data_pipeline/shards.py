"""Parquet shards of clips: where they are, the schema, an atomic shard writer, and the readers.

One row per clip. Tensors are stored as raw little-endian bytes plus their shape: Parquet keeps
a binary value as one contiguous blob, while a list-typed tensor (Arrow's fixed-shape tensor)
is stored element by element with repetition levels, 13x slower to write (docs/data.md, profile).
Readers turn a binary column back into one ``B×...`` array without copying (`tensor_column`).

=============  ==============  =====================================================
column         type            meaning
=============  ==============  =====================================================
clip_id        string          stable id (hash of video + sampling settings)
video          string          source path or URI, as resolved from the manifest
caption        string          text of the clip
indices        list<int64>     source frame indices, ``start + stride * k``
fps            float64         source frame rate
frames         binary          uint8 ``T×H×W×3`` RGB, C order
shape          list<int64>     ``[T, H, W, 3]``
latents        binary          (``--encode``) float16 ``T×4×H/8×W/8``, scaled by the VAE factor
latents_shape  list<int64>     (``--encode``) ``[T, 4, H/8, W/8]``
text_embeds    binary          (``--encode``) float16 ``77×C`` CLIP last hidden state
text_embeds_shape list<int64>  (``--encode``) ``[77, C]``
=============  ==============  =====================================================

A shard's Parquet footer also records the clips of its unit that were rejected
(key ``inkwalk.rejects``, JSON), so a resumed run rebuilds the full rejects list.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from data_pipeline.location import Location
from inkwalk.errors import InkwalkError


class ShardsNotFoundError(InkwalkError):
    """A folder with no shards where training expected them."""


BASE_FIELDS = [
    pa.field("clip_id", pa.string()),
    pa.field("video", pa.string()),
    pa.field("caption", pa.string()),
    pa.field("indices", pa.list_(pa.int64())),
    pa.field("fps", pa.float64()),
    pa.field("frames", pa.binary()),
    pa.field("shape", pa.list_(pa.int64())),
]
ENCODE_FIELDS = [
    pa.field("latents", pa.binary()),
    pa.field("latents_shape", pa.list_(pa.int64())),
    pa.field("text_embeds", pa.binary()),
    pa.field("text_embeds_shape", pa.list_(pa.int64())),
]
TENSORS = {"frames": ("shape", np.uint8), "latents": ("latents_shape", np.float16),
           "text_embeds": ("text_embeds_shape", np.float16)}
SHARD_DIR = "shards"
SHARD_SUFFIX = ".parquet"
REJECTS_KEY = "inkwalk.rejects"


def shard_schema(encoded: bool) -> pa.Schema:
    """The schema of a shard, with or without the cached latents and text embeddings."""
    return pa.schema(BASE_FIELDS + (ENCODE_FIELDS if encoded else []))


def shard_files(where: "str | Location") -> list[str]:
    """Complete shard files under a run folder (or a shards folder), sorted by name (= plan order)."""
    loc = Location.of(where)
    for base in (loc.path(SHARD_DIR), loc.root):
        if loc.is_dir(base):
            found = loc.fs.get_file_info(pafs.FileSelector(base, recursive=False))
            files = sorted(f.path for f in found if f.type == pafs.FileType.File and f.path.endswith(SHARD_SUFFIX))
            if files or base == loc.root:
                return files
    return []


def shard_clip_ids(where: "str | Location", path: str) -> list[str]:
    """The clip ids of one shard (only that column is read)."""
    loc = Location.of(where)
    with loc.fs.open_input_file(path) as f:
        return pq.read_table(f, columns=["clip_id"]).column("clip_id").to_pylist()


def shard_footer(where: "str | Location", path: str) -> tuple[int, list[dict]]:
    """(clips in the shard, the unit's rejects recorded in its footer), without reading any data."""
    loc = Location.of(where)
    with loc.fs.open_input_file(path) as f:
        meta = pq.read_metadata(f)
    raw = (meta.metadata or {}).get(REJECTS_KEY.encode())
    return meta.num_rows, json.loads(raw) if raw else []


def tensor_array(values: np.ndarray) -> pa.Array:
    """A ``B×...`` array as a binary column of B values, sharing the array's memory (no per-row bytes)."""
    values = np.ascontiguousarray(values)
    n = len(values)
    per_row = values.nbytes // n if n else 0
    offsets = pa.py_buffer(np.arange(n + 1, dtype=np.int32) * per_row)
    return pa.Array.from_buffers(pa.binary(), n, [None, offsets, pa.py_buffer(values)])


def tensor_column(table: pa.Table, name: str) -> np.ndarray:
    """A tensor column (`frames`, `latents`, `text_embeds`) of a shard batch as one ``B×...`` array.

    Reads the binary values' buffer directly (no copy when the batch is one chunk); every row
    of a batch must have the same shape, as every clip of one run does.
    """
    shape_name, dtype = TENSORS[name]
    column = table.column(name).combine_chunks()
    if len(column) == 0:
        return np.zeros((0,), dtype)
    shapes = np.asarray(table.column(shape_name).combine_chunks().flatten()).reshape(len(column), -1)
    if (shapes != shapes[0]).any():
        raise InkwalkError(f"clips of different {shape_name} in one batch: write all shards with the same settings")
    offsets = np.frombuffer(column.buffers()[1], np.int32)[column.offset:column.offset + len(column) + 1]
    data = np.frombuffer(column.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    return data.view(dtype).reshape([len(column), *shapes[0]])


class ShardFile:
    """One shard, written row group by row group under a temporary name and renamed when closed.

    A task killed midway leaves only a ``.tmp`` file, which `remove_partial_shards` deletes on the
    next run; readers never see a half-written shard.
    """

    def __init__(self, where: "str | Location", name: str, encoded: bool):
        self.loc = Location.of(where)
        folder = self.loc.path(SHARD_DIR)
        self.loc.fs.create_dir(folder, recursive=True)
        self.schema = shard_schema(encoded)
        self.path = posixpath.join(folder, name + SHARD_SUFFIX)
        self._tmp = self.path + ".tmp"
        self._sink = self.loc.fs.open_output_stream(self._tmp)
        # zstd level 1: 0.48x the raw size of ink-wash frames for 6 ms per 8×256² clip (docs/data.md)
        self._writer = pq.ParquetWriter(self._sink, self.schema, compression="zstd", compression_level=1)
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        """Append rows (one row group per call)."""
        if table.num_rows:
            self._writer.write_table(table.select(self.schema.names).cast(self.schema))
            self.rows += table.num_rows

    def close(self, rejects: list[dict] | None = None) -> int:
        """Record the unit's rejects in the footer, finish the file, rename it; returns its bytes."""
        if rejects:
            self._writer.add_key_value_metadata({REJECTS_KEY: json.dumps(rejects, sort_keys=True)})
        self._writer.close()
        self._sink.close()
        self.loc.fs.move(self._tmp, self.path)
        return self.loc.fs.get_file_info(self.path).size


def clip_table(clip: Mapping[str, Any]) -> pa.Table:
    """One decoded clip (`data_pipeline.clips.make_clip`) as a one-row shard table; the frames are not copied."""
    frames = clip["frames"]
    return pa.table({
        "clip_id": pa.array([clip["clip_id"]], pa.string()),
        "video": pa.array([clip["video"]], pa.string()),
        "caption": pa.array([clip["caption"]], pa.string()),
        "indices": pa.array([np.asarray(clip["indices"], np.int64)], pa.list_(pa.int64())),
        "fps": pa.array([float(clip["fps"])], pa.float64()),
        "frames": tensor_array(frames[None]),
        "shape": pa.array([list(frames.shape)], pa.list_(pa.int64())),
    })


class ShardWriter:
    """Writes rows into numbered shards ``part-NNNNN`` of at most `rows_per_shard` clips (ad-hoc use;
    the pipeline writes one named shard per unit of its plan)."""

    def __init__(self, out: "str | Location", encoded: bool, rows_per_shard: int = 256, prefix: str = "part"):
        self.loc = Location.of(out)
        self.encoded = encoded
        self.rows_per_shard = rows_per_shard
        self.prefix = prefix
        self.rows_written = 0
        self.bytes_written = 0
        self.files: list[str] = []
        self._shard: ShardFile | None = None

    def write_table(self, table: pa.Table) -> None:
        """Append clips, starting a new shard whenever the current one is full."""
        offset = 0
        while offset < table.num_rows:
            if self._shard is None:
                self._shard = ShardFile(self.loc, f"{self.prefix}-{len(self.files):05d}", self.encoded)
                self.files.append(self._shard.path)
            take = min(self.rows_per_shard - self._shard.rows, table.num_rows - offset)
            self._shard.write(table.slice(offset, take))
            self.rows_written += take
            offset += take
            if self._shard.rows >= self.rows_per_shard:
                self.close()

    def close(self) -> None:
        if self._shard is not None:
            self.bytes_written += self._shard.close()
            self._shard = None


def remove_partial_shards(where: "str | Location") -> int:
    """Delete temporary files left by a killed run; returns how many."""
    loc = Location.of(where)
    base = loc.path(SHARD_DIR)
    if not loc.is_dir(base):
        return 0
    stale = [f.path for f in loc.fs.get_file_info(pafs.FileSelector(base)) if f.path.endswith(".tmp")]
    for path in stale:
        loc.fs.delete_file(path)
    return len(stale)


def read_shards(path: str, columns: list[str] | None = None, filesystem: pafs.FileSystem | None = None):
    """A Ray Dataset over the shards of a run folder (``<out>`` or ``<out>/shards``).

    `path` is a local folder, a URI (``s3://``, ``file://``, ...) or a path inside `filesystem`;
    the read tasks get the filesystem with the file list, so they read from any node.
    """
    import ray.data

    loc = Location.of(path, filesystem)
    files = shard_files(loc)
    if not files:
        raise ShardsNotFoundError(f"no Parquet shards under {path}: run `python -m data_pipeline.clvhd "
                                  f"--manifest M --out {path}` first")
    return ray.data.read_parquet(files, filesystem=loc.fs, columns=columns)


def row_to_arrays(row: Mapping[str, Any]) -> dict[str, Any]:
    """Decode one shard row into numpy arrays (frames T×H×W×3 uint8, latents, text_embeds).

    Tensor columns become arrays of their stored shape and dtype; strings stay strings,
    `indices` becomes an int64 array. Columns a row does not have are simply absent.
    """
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in TENSORS:
            shape_key, dtype = TENSORS[key]
            shape = [int(s) for s in row[shape_key]]
            out[key] = np.frombuffer(value, dtype=dtype).reshape(shape)
        elif key == "indices":
            out[key] = np.asarray(value, dtype=np.int64)
        elif not key.endswith("shape"):
            out[key] = value
    return out
