"""A store of files on any filesystem pyarrow understands: a local folder, ``s3://``, ``gs://``...

Every node of a cluster reads and writes the same store, so the work of a render (its input
paintings, the encoded chunks of its segments, the joined video) lives here rather than in
any one process. Files are written whole: to a temporary name, then moved into place (or,
on object stores without rename, uploaded in one request, which is atomic there too), so a
reader never sees half a file and an interrupted write leaves no file under the real name.
Large files are copied in blocks, never read whole into memory.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

import pyarrow.fs as pafs

from inkwalk.errors import InkwalkError

BLOCK = 1 << 20  # bytes per read/write when streaming a file
TMP_MARK = ".tmp-"  # in the names of files being written; `sweep_temporaries` removes stale ones


class StoreError(InkwalkError):
    """A store that cannot be opened or a file in it that cannot be read."""


def is_uri(text: str) -> bool:
    return "://" in str(text)


def resolve(uri: str | Path) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) of a local path or a URI; local paths become absolute."""
    text = str(uri)
    if not is_uri(text):
        return pafs.LocalFileSystem(), str(Path(text).expanduser().resolve())
    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise StoreError(f"{text}: not a usable store URI ({str(exc).splitlines()[0]})") from None
    return fs, path.rstrip("/") or "/"


def file_uri(fs: pafs.FileSystem, path: str) -> str:
    """A URI that `resolve` maps back to (fs, path): what travels between processes and nodes."""
    if isinstance(fs, pafs.LocalFileSystem):
        return Path(path).as_uri()
    return f"{fs.type_name}://{path.lstrip('/')}"


class Store:
    """Files under one root (local folder or URI); paths are relative, ``/``-separated."""

    def __init__(self, uri: str | Path):
        self.fs, self.root = resolve(uri)
        self.uri = file_uri(self.fs, self.root)
        try:
            self.fs.create_dir(self.root, recursive=True)
        except OSError as exc:
            raise StoreError(f"cannot use store {uri}: {str(exc).splitlines()[0]}") from None

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    def __reduce__(self):
        return type(self), (self.uri,)

    # ------------------------------------------------------------------ names
    def full(self, rel: str) -> str:
        """The filesystem path of a store path."""
        rel = rel.strip("/")
        if not rel or any(part in ("", ".", "..") for part in rel.split("/")):
            raise StoreError(f"bad store path {rel!r}")
        return f"{self.root}/{rel}"

    def uri_of(self, rel: str) -> str:
        """A URI of a store path that any node can open with `resolve`."""
        return file_uri(self.fs, self.full(rel))

    # ------------------------------------------------------------------ reading
    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.full(rel)).type == pafs.FileType.File

    def exist(self, rels: Sequence[str]) -> list[bool]:
        """`exists` of many files in one filesystem call (one request batch on object stores, not one each)."""
        if not rels:
            return []
        return [i.type == pafs.FileType.File for i in self.fs.get_file_info([self.full(r) for r in rels])]

    def size(self, rel: str) -> int | None:
        info = self.fs.get_file_info(self.full(rel))
        return info.size if info.type == pafs.FileType.File else None

    def get_bytes(self, rel: str) -> bytes | None:
        """A (small) file's bytes, or None when it does not exist."""
        if not self.exists(rel):
            return None
        try:
            with self.fs.open_input_stream(self.full(rel)) as src:
                return src.read()
        except FileNotFoundError:  # deleted between the check and the read
            return None

    def open_input(self, rel: str) -> BinaryIO:
        """A seekable reader of a file (for decoders and ranged HTTP responses).

        Wrapped in `io.BufferedReader`: pyarrow's own file has no `readline`, and Pillow's format
        probes call it, so a TIFF or WebP read from the store failed as "corrupt" without this.
        """
        return io.BufferedReader(self.fs.open_input_file(self.full(rel)))

    def iter_bytes(self, rel: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of a file in blocks: streaming without holding the file."""
        with self.fs.open_input_file(self.full(rel)) as src:
            src.seek(start)
            left = (end if end is not None else src.size()) - start
            while left > 0:
                block = src.read(min(BLOCK, left))
                if not block:
                    return
                left -= len(block)
                yield block

    def get_file(self, rel: str, local: str | Path) -> Path:
        """Copy a store file to a local path, atomically (temporary name in the same folder)."""
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}{TMP_MARK}{uuid.uuid4().hex[:8]}")
        try:
            with self.fs.open_input_stream(self.full(rel)) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, BLOCK)
            tmp.replace(local)
        finally:
            tmp.unlink(missing_ok=True)
        return local

    def list(self, rel: str = "") -> list[pafs.FileInfo]:
        """Entries directly under a folder (empty when it does not exist)."""
        folder = self.full(rel) if rel else self.root
        return self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))

    # ------------------------------------------------------------------ writing
    def _publish(self, tmp: str, dst: str) -> None:
        try:
            self.fs.move(tmp, dst)
        except OSError:  # object stores without rename: the upload itself is atomic there
            self.fs.copy_file(tmp, dst)
            self.fs.delete_file(tmp)

    def _tmp_name(self, dst: str) -> str:
        return f"{dst}{TMP_MARK}{uuid.uuid4().hex[:8]}"

    def put_bytes(self, rel: str, data: bytes) -> str:
        return self.put_stream(rel, iter([data]))

    def writer(self, rel: str, max_bytes: int | None = None) -> "StoreWriter":
        """A writer that publishes `rel` on `commit()` and leaves nothing behind on `abort()`."""
        return StoreWriter(self, rel, max_bytes)

    def put_stream(self, rel: str, blocks, max_bytes: int | None = None) -> str:
        """Write an iterable of byte blocks whole; returns the store path.

        With `max_bytes`, a stream that grows past it is abandoned (nothing is published) and
        `StoreError` is raised as soon as the limit is crossed.
        """
        out = self.writer(rel, max_bytes)
        try:
            for block in blocks:
                out.write(block)
            out.commit()
        finally:
            out.abort()
        return rel

    def put_file(self, rel: str, local: str | Path) -> str:
        """Copy a local file into the store, streaming."""
        def blocks():
            with open(local, "rb") as src:
                while block := src.read(BLOCK):
                    yield block
        return self.put_stream(rel, blocks())

    def create_exclusive(self, rel: str, data: bytes, settle_s: float = 1.0) -> bool:
        """Create a small file only if it does not exist yet; True when this call created it.

        A local (or NFS) folder has an atomic exclusive create (``O_EXCL``). pyarrow offers no
        conditional write for object stores, so there the file is written with a unique token
        and read back after `settle_s`: of writers that overlap within that window, the one whose
        write landed last wins and the others see its token. Not strict across a longer stall
        between the check and the write: on object stores, run one ingress replica per app or
        accept that rare double run (it renders the same chunks, so the output is the same).
        """
        path = self.full(rel)
        if isinstance(self.fs, pafs.LocalFileSystem):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            return True
        if self.exists(rel):
            return False
        token = data + b"\n" + uuid.uuid4().hex.encode()
        self.put_bytes(rel, token)
        time.sleep(settle_s)
        return self.get_bytes(rel) == token

    def delete(self, rel: str) -> None:
        """Delete a file or a folder (recursively); missing is fine, also when another caller
        deletes it at the same time."""
        path = self.full(rel)
        for attempt in range(50):  # every failed try means another caller removed something: progress
            info = self.fs.get_file_info(path)
            try:
                if info.type == pafs.FileType.Directory:
                    self.fs.delete_dir(path)
                elif info.type == pafs.FileType.File:
                    self.fs.delete_file(path)
                return
            except OSError as exc:  # a file went, or came, under us: another writer or delete is at work
                if attempt == 49 or not isinstance(exc, FileNotFoundError) and "not empty" not in str(exc).lower():
                    raise

    def _delete_quietly(self, path: str) -> None:
        try:
            self.fs.delete_file(path)
        except OSError:
            pass

    def sweep_temporaries(self, rel: str, older_than_s: float) -> int:
        """Remove files left half-written (by a killed writer) under a folder; returns how many."""
        folder = self.full(rel)
        cutoff = time.time() - older_than_s
        removed = 0
        for info in self.fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True)):
            if info.type == pafs.FileType.File and TMP_MARK in info.base_name and info.mtime is not None \
                    and info.mtime.timestamp() < cutoff:
                self._delete_quietly(info.path)
                removed += 1
        return removed


class StoreWriter:
    """One file being written to a store: blocks go to a temporary name until `commit`."""

    def __init__(self, store: Store, rel: str, max_bytes: int | None = None):
        self.store, self.rel, self.max_bytes = store, rel, max_bytes
        self.dst = store.full(rel)
        store.fs.create_dir(self.dst.rsplit("/", 1)[0], recursive=True)
        self.tmp = store._tmp_name(self.dst)
        self.out = store.fs.open_output_stream(self.tmp)
        self.size = 0
        self.digest = hashlib.sha256()
        self.done = False

    def write(self, block: bytes) -> None:
        self.size += len(block)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise StoreError(f"{self.rel}: larger than {self.max_bytes} bytes")
        self.digest.update(block)
        self.out.write(block)

    def commit(self) -> str:
        """Publish the file under its name; returns its sha256."""
        self.out.close()
        self.store._publish(self.tmp, self.dst)
        self.done = True
        return self.digest.hexdigest()

    def abort(self) -> None:
        """Drop the file unless it was committed (safe to call more than once)."""
        if self.done:
            return
        self.done = True
        if not self.out.closed:
            self.out.close()
        self.store._delete_quietly(self.tmp)


def sha256_file(path: str | Path) -> str:
    """Content hash of a local or store file, streaming (inputs are addressed by it)."""
    fs, full = resolve(path)
    digest = hashlib.sha256()
    with fs.open_input_stream(full) as src:
        while block := src.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()
