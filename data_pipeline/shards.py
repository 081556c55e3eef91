"""Parquet shards of clips: the schema, an atomic shard writer, and the readers training uses.

One row per clip. Tensors are stored as raw little-endian bytes plus their shape, so a row
reads back without pickling and any Parquet reader can see the metadata columns:

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
"""

from __future__ import annotations

import posixpath
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

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


def shard_schema(encoded: bool) -> pa.Schema:
    """The schema of a shard, with or without the cached latents and text embeddings."""
    return pa.schema(BASE_FIELDS + (ENCODE_FIELDS if encoded else []))


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) for a local path or any URI pyarrow understands."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), posixpath.abspath(uri)


def shard_files(out: str) -> list[str]:
    """Complete shard files under a run folder (or a shards folder), sorted."""
    fs, root = filesystem(out)
    for base in (posixpath.join(root, SHARD_DIR), root):
        info = fs.get_file_info(base)
        if info.type == pafs.FileType.Directory:
            found = fs.get_file_info(pafs.FileSelector(base, recursive=False))
            files = sorted(f.path for f in found if f.type == pafs.FileType.File and f.path.endswith(SHARD_SUFFIX))
            if files or base == root:
                return files
    return []


def written_clip_ids(out: str) -> set[str]:
    """Ids of every clip already in a complete shard (only the id column is read)."""
    fs, _ = filesystem(out)
    ids: set[str] = set()
    for path in shard_files(out):
        with fs.open_input_file(path) as f:
            ids.update(pq.read_table(f, columns=["clip_id"]).column("clip_id").to_pylist())
    return ids


class ShardWriter:
    """Writes rows into numbered Parquet shards of at most `rows_per_shard` clips.

    Each shard is written under a temporary name and renamed when closed, so a run killed
    midway leaves only complete shards behind; the next run resumes from them.
    """

    def __init__(self, out: str, encoded: bool, rows_per_shard: int = 256, prefix: str = "part"):
        self.fs, root = filesystem(out)
        self.dir = posixpath.join(root, SHARD_DIR)
        self.fs.create_dir(self.dir, recursive=True)
        self.schema = shard_schema(encoded)
        self.rows_per_shard = rows_per_shard
        self.prefix = prefix
        self.rows_written = 0
        self.bytes_written = 0
        self.files: list[str] = []
        self._writer: pq.ParquetWriter | None = None
        self._sink = None
        self._rows_in_shard = 0
        self._tmp = ""

    def _open(self) -> None:
        final = posixpath.join(self.dir, f"{self.prefix}-{len(self.files):05d}{SHARD_SUFFIX}")
        self._tmp = final + ".tmp"
        self._sink = self.fs.open_output_stream(self._tmp)
        # zstd level 1: about 0.6x the raw size of ink-wash frames for the CPU cost of a memcpy or two
        self._writer = pq.ParquetWriter(self._sink, self.schema, compression="zstd", compression_level=1)
        self._rows_in_shard = 0
        self.files.append(final)

    def write_table(self, table: pa.Table) -> None:
        """Append clips, starting a new shard whenever the current one is full."""
        table = table.select(self.schema.names).cast(self.schema)
        offset = 0
        while offset < table.num_rows:
            if self._writer is None:
                self._open()
            take = min(self.rows_per_shard - self._rows_in_shard, table.num_rows - offset)
            self._writer.write_table(table.slice(offset, take))
            self._rows_in_shard += take
            self.rows_written += take
            offset += take
            if self._rows_in_shard >= self.rows_per_shard:
                self._finish()

    def _finish(self) -> None:
        self._writer.close()
        self._sink.close()
        self.fs.move(self._tmp, self.files[-1])
        self.bytes_written += self.fs.get_file_info(self.files[-1]).size
        self._writer = None

    def close(self) -> None:
        if self._writer is not None:
            self._finish()


def write_shard(table: pa.Table, out: str, name: str, encoded: bool) -> tuple[str, int]:
    """Write one complete shard atomically (temporary name, then rename); returns (path, bytes).

    Decode tasks call this on their own clips, so shards are written in parallel by the workers
    rather than funnelled through the driver; a task killed midway leaves only a ``.tmp`` file,
    which `remove_partial_shards` deletes on the next run.
    """
    fs, root = filesystem(out)
    folder = posixpath.join(root, SHARD_DIR)
    fs.create_dir(folder, recursive=True)
    schema = shard_schema(encoded)
    final = posixpath.join(folder, name + SHARD_SUFFIX)
    tmp = final + ".tmp"
    with fs.open_output_stream(tmp) as sink:
        # zstd level 1, as ShardWriter: about 0.6x the raw size of ink-wash frames for little CPU
        pq.write_table(table.select(schema.names).cast(schema), sink, compression="zstd", compression_level=1)
    fs.move(tmp, final)
    return final, fs.get_file_info(final).size


def remove_partial_shards(out: str) -> int:
    """Delete temporary files left by a killed run; returns how many."""
    fs, root = filesystem(out)
    base = posixpath.join(root, SHARD_DIR)
    if fs.get_file_info(base).type != pafs.FileType.Directory:
        return 0
    stale = [f.path for f in fs.get_file_info(pafs.FileSelector(base)) if f.path.endswith(".tmp")]
    for path in stale:
        fs.delete_file(path)
    return len(stale)


def read_shards(path: str, columns: list[str] | None = None):
    """A Ray Dataset over the shards of a run folder (``<out>`` or ``<out>/shards``)."""
    import ray.data

    files = shard_files(path)
    if not files:
        raise ShardsNotFoundError(f"no Parquet shards under {path}: run `python -m data_pipeline.clvhd "
                           f"--manifest M --out {path}` first")
    fs, _ = filesystem(path)
    return ray.data.read_parquet(files, filesystem=fs, columns=columns)


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
