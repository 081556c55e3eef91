"""A run folder on any pyarrow filesystem: local, ``s3://``, ``gs://``, ``hdfs://`` or a given one."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass

import pyarrow.fs as pafs


@dataclass(frozen=True)
class Location:
    """A run folder: a pyarrow filesystem and a path in it.

    Built once on the driver (a local path is made absolute *there*) and pickled into the tasks,
    so every worker on every node writes and reads the same place, whatever its working folder.
    """

    fs: pafs.FileSystem
    root: str

    @classmethod
    def of(cls, where: "str | Location", filesystem: pafs.FileSystem | None = None) -> "Location":
        """A local path, a URI pyarrow knows (``file://``, ``s3://``, ``gs://``, ``hdfs://``), or a
        path inside an explicit pyarrow `filesystem` (e.g. a ``SubTreeFileSystem``)."""
        if isinstance(where, Location):
            return where
        where = str(where)
        if filesystem is not None:
            return cls(filesystem, where.rstrip("/") or "/")
        if "://" in where:
            fs, path = pafs.FileSystem.from_uri(where)
            return cls(fs, path.rstrip("/") or "/")
        return cls(pafs.LocalFileSystem(), posixpath.abspath(where))

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def write_json(self, name: str, obj) -> None:
        """Write `obj` as indented JSON to the file `name` of this folder (settings, summary)."""
        with self.fs.open_output_stream(self.path(name)) as f:
            f.write(json.dumps(obj, indent=2).encode())

    def is_dir(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.Directory
