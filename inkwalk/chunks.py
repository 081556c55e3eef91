"""Chunks: a video made of independently encoded pieces, joined without re-encoding.

Each segment of a render is encoded on its own (wherever it was computed) into a short H.264
mp4: a closed GOP that starts with an IDR frame and needs nothing before or after it. The
video is those chunks joined by stream copy, so every frame is encoded exactly once and the
join costs only I/O. All chunks of one video share the codec parameters (`Codec`), which
makes their decoder configuration (SPS/PPS) identical; `join_chunks` checks that.

Timestamps at a join: each chunk's presentation times are shifted by the frames before it.
Decode timestamps are renumbered over the whole video as ``(packet index - REORDER) * frame
duration``: x264 delays decode times by up to two frames when it uses B-frames, and a chunk
of one frame has no delay, so chunks differ; a common delay that is at least every chunk's
keeps decode times increasing and never after presentation (checked per packet).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from inkwalk.errors import InkwalkError
from inkwalk.provenance import METADATA_KEY, encode_metadata
from inkwalk.store import Store

REORDER = 4  # frames of decode-time delay in the joined video (x264 needs at most 2)


@dataclass(frozen=True)
class Codec:
    """Encoder settings shared by every chunk of a video (they must match to join)."""

    crf: int = 18
    preset: str = "medium"

    def fields(self) -> dict[str, Any]:
        return {"crf": self.crf, "preset": self.preset}


def encode_chunk(frames: np.ndarray, path: str | Path, fps: float, repeat_first: int = 1,
                 codec: Codec = Codec()) -> int:
    """Encode frames (N×H×W×3 uint8) into a chunk file; the first is written `repeat_first` times.

    A held painting is one upscaled frame repeated, so it is computed and shipped once.
    Returns the number of frames in the chunk.
    """
    from inkwalk.video import check_clip
    from inkwalk.video_writer import VideoWriter

    frames = check_clip(frames, "frames of a chunk")
    if repeat_first < 1:
        raise InkwalkError(f"repeat_first must be >= 1, got {repeat_first}")
    with VideoWriter(path, fps, crf=codec.crf, preset=codec.preset) as writer:
        for _ in range(repeat_first):
            writer.write(frames[0])
        writer.write_many(frames[1:])
    return writer.frames_written


def encode_chunk_to_store(frames: np.ndarray, store: Store, rel: str, fps: float, repeat_first: int = 1,
                          codec: Codec = Codec()) -> int:
    """`encode_chunk` into a store path (encoded locally, then copied in whole)."""
    with tempfile.TemporaryDirectory(prefix="inkwalk-chunk-") as tmp:
        local = Path(tmp) / "chunk.mp4"
        count = encode_chunk(frames, local, fps, repeat_first, codec)
        store.put_file(rel, local)
    return count


def join_chunks(store: Store, chunks: Sequence[str], out: str | Path,
                metadata: dict[str, Any] | None = None) -> int:
    """Join chunk files (store paths, in order) into the local mp4 `out` by stream copy.

    `metadata` is written as JSON into the mp4's comment tag (`inkwalk.provenance.read_metadata` reads it back).
    Returns the number of frames.
    """
    import av

    if not chunks:
        raise InkwalkError("no chunks to join")
    frames = 0
    with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
        if metadata:
            dst.metadata[METADATA_KEY] = encode_metadata(metadata)
        ostream = template = None
        duration = None
        pts_offset = 0
        for rel in chunks:
            with store.open_input(rel) as handle, av.open(handle) as src:
                stream = src.streams.video[0]
                if ostream is None:
                    template = _signature(stream)
                    ostream = dst.add_stream_from_template(stream)
                elif _signature(stream) != template:
                    raise InkwalkError(f"chunk {rel} was encoded with other parameters than the first chunk "
                                       f"({_signature(stream)[:3]} vs {template[:3]}): it cannot be joined")
                count = 0
                for packet in src.demux(stream):
                    if packet.size == 0:  # demuxer's end-of-stream marker
                        continue
                    duration = duration or packet.duration
                    packet.pts += pts_offset
                    packet.dts = (frames + count - REORDER) * duration
                    if packet.dts > packet.pts:
                        raise InkwalkError(f"chunk {rel} reorders frames more than {REORDER} frames deep")
                    packet.stream = ostream
                    dst.mux(packet)
                    count += 1
                if count == 0:
                    raise InkwalkError(f"chunk {rel} has no frames")
                frames += count
                pts_offset += count * duration
    return frames


def _signature(stream) -> tuple:
    """What must match between chunks for a stream copy: size, format, rate and decoder config."""
    ctx = stream.codec_context
    return (ctx.name, ctx.width, ctx.height, str(ctx.pix_fmt), stream.time_base, stream.average_rate,
            bytes(ctx.extradata or b""))


def join_chunks_to_store(store: Store, chunks: Sequence[str], rel: str,
                         metadata: dict[str, Any] | None = None) -> int:
    """`join_chunks` into a store path (joined locally, then copied in whole)."""
    with tempfile.TemporaryDirectory(prefix="inkwalk-join-") as tmp:
        local = Path(tmp) / "video.mp4"
        count = join_chunks(store, chunks, local, metadata)
        store.put_file(rel, local)
    return count
