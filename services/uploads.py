"""Multipart uploads streamed straight into the store, with every limit enforced while they arrive.

The ingress never holds an upload: each file part is written block by block to the store (and
hashed on the way), so its memory does not depend on the upload's size. A declared
Content-Length over the limit is refused before a byte is read; a body that grows past a limit
(with or without a Content-Length, chunked too) is refused the moment it crosses it; a body
that stalls is refused after `read_timeout_s`. Nothing is decoded here: images are checked
from their headers afterwards (`services.limits`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from inkwalk.store import Store, StoreError
from services.http_guard import clip
from services.limits import RequestError

MAX_FIELD_BYTES = 64 * 1024


@dataclass
class UploadedFile:
    field: str
    filename: str
    path: str  # store path
    size: int
    sha256: str


@dataclass
class Upload:
    files: list[UploadedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class UploadLimits:
    max_total_bytes: int
    max_file_bytes: int
    max_files: int
    file_fields: tuple[str, ...]
    text_fields: tuple[str, ...]
    read_timeout_s: float = 30.0


class _Part:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.name = self.filename = ""
        self.buffer = bytearray()
        self.writer = None


async def receive(request, store: Store, folder: str, limits: UploadLimits) -> Upload:
    """Stream a multipart/form-data request into `folder` of the store; fields come back as text.

    Raises `RequestError` (400/408/413/415/422) as soon as the request breaks a rule; files
    already written for it are removed.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, f"bad Content-Length header {declared[:20]!r}")
        if int(declared) > limits.max_total_bytes:
            raise RequestError(413, f"the upload is {int(declared)} bytes; the limit is {limits.max_total_bytes} "
                                    "bytes per job")
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise RequestError(415, "send the paintings as multipart/form-data (repeated 'paintings' file fields "
                                "and a 'settings' JSON field)")
    upload = Upload()
    events: list[tuple[str, object]] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}

    def on_header_field(data, start, end):
        header["field"] += data[start:end]

    def on_header_value(data, start, end):
        header["value"] += data[start:end]

    def on_header_end():
        events.append(("header", (bytes(header["field"]).decode("latin-1").lower(),
                                  bytes(header["value"]).decode("latin-1"))))
        header["field"], header["value"] = bytearray(), bytearray()

    callbacks = {"on_part_begin": lambda: events.append(("begin", None)),
                 "on_part_data": lambda data, start, end: events.append(("data", bytes(data[start:end]))),
                 "on_part_end": lambda: events.append(("end", None)),
                 "on_header_field": on_header_field, "on_header_value": on_header_value,
                 "on_header_end": on_header_end,
                 "on_headers_finished": lambda: events.append(("headers", None))}
    parser = MultipartParser(params[b"boundary"], callbacks)
    total = 0
    part: _Part | None = None
    writers = []
    try:
        stream = request.stream().__aiter__()
        while True:
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), limits.read_timeout_s)
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise RequestError(408, f"the upload stalled for {limits.read_timeout_s:g} s; send it again") from None
            total += len(chunk)
            if total > limits.max_total_bytes:
                raise RequestError(413, f"the upload is over {limits.max_total_bytes} bytes, the limit per job")
            try:
                parser.write(chunk)
            except Exception as exc:  # python-multipart's MultipartParseError and friends
                raise RequestError(400, f"malformed multipart body ({str(exc).splitlines()[0][:120]})") from None
            for kind_, value in events:
                part = await _event(kind_, value, part, upload, store, folder, limits, writers)
            events.clear()
        try:
            parser.finalize()
        except Exception as exc:
            raise RequestError(400, f"malformed multipart body ({str(exc).splitlines()[0][:120]})") from None
        if part is not None:
            raise RequestError(400, "the multipart body ended in the middle of a part")
        return upload
    except BaseException:
        for w in writers:
            await asyncio.to_thread(w.abort)
        for f in upload.files:
            await asyncio.to_thread(store.delete, f.path)
        raise


async def _event(kind: str, value, part: _Part | None, upload: Upload, store: Store, folder: str,
                 limits: UploadLimits, writers: list) -> _Part | None:
    if kind == "begin":
        return _Part()
    assert part is not None
    if kind == "header":
        name, text = value
        part.headers[name] = text
    elif kind == "headers":
        _, params = parse_options_header(part.headers.get("content-disposition", ""))
        part.name = _text(params.get(b"name", b""), "a form field's name")
        part.filename = _text(params.get(b"filename", b""), "a file name")
        if b"filename" in params:
            if part.name not in limits.file_fields:
                raise RequestError(422, f"unexpected file field {clip(part.name)}; send files as "
                                        f"{' / '.join(repr(f) for f in limits.file_fields)}")
            if sum(f.field == part.name for f in upload.files) >= limits.max_files:
                raise RequestError(413, f"more than {limits.max_files} files sent; the limit is "
                                        f"{limits.max_files} per job")
            rel = f"{folder}/{len(upload.files):03d}"
            part.writer = await asyncio.to_thread(store.writer, rel, limits.max_file_bytes)
            writers.append(part.writer)
        elif part.name not in limits.text_fields:
            raise RequestError(422, f"unexpected form field {clip(part.name)}; known: "
                                    f"{', '.join(limits.file_fields + limits.text_fields)}")
    elif kind == "data":
        if part.writer is not None:
            try:
                await asyncio.to_thread(part.writer.write, value)
            except StoreError:
                raise RequestError(413, f"file {clip(part.filename)} is over {limits.max_file_bytes} bytes, the "
                                        f"limit per painting: downscale or recompress it") from None
        else:
            part.buffer += value
            if len(part.buffer) > MAX_FIELD_BYTES:
                raise RequestError(413, f"form field {clip(part.name)} is over {MAX_FIELD_BYTES} bytes")
    elif kind == "end":
        if part.writer is not None:
            sha = await asyncio.to_thread(part.writer.commit)
            writers.remove(part.writer)
            upload.files.append(UploadedFile(part.name, part.filename, part.writer.rel, part.writer.size, sha))
        else:
            upload.fields[part.name] = _text(bytes(part.buffer), f"form field {clip(part.name)}")
        return None
    return part


def _text(raw: bytes | str, what: str) -> str:
    """Form text as sent, or RequestError(422): text that is not UTF-8 could not be stored and served back."""
    try:
        text = raw if isinstance(raw, str) else raw.decode("utf-8")
        text.encode("utf-8")
    except UnicodeError as exc:
        raise RequestError(422, f"{what} is not UTF-8 text ({exc.reason} at position {exc.start}): "
                                "send plain UTF-8") from None
    return text
