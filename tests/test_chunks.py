"""Chunks joined by stream copy: exactly the frames encoded, no repeat or gap at any seam."""

from __future__ import annotations

import numpy as np
import pytest

from inkwalk.chunks import Codec, encode_chunk_to_store, join_chunks
from inkwalk.provenance import read_metadata
from inkwalk.errors import InkwalkError
from inkwalk.store import Store
from inkwalk.video import read_frames


def _frames(start: int, count: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frames whose index is written in their pixels (a bright bar at column 4 * index)."""
    out = np.full((count, h, w, 3), 40, np.uint8)
    for i in range(count):
        out[i, :, (4 * (start + i)) % w:(4 * (start + i)) % w + 4] = 230
    return out


def _index(frame: np.ndarray) -> int:
    return int(np.argmax(frame[:, :, 0].mean(axis=0))) // 4


@pytest.mark.parametrize("lengths", [[1, 5, 13, 1, 2, 9, 3], [1], [1, 1, 1], [7, 1]])
def test_joined_video_has_every_frame_once_in_order(tmp_path, lengths):
    store = Store(tmp_path / "store")
    chunks, start = [], 0
    for i, n in enumerate(lengths):  # chunks of 1 frame have no B-frame delay, longer ones do
        encode_chunk_to_store(_frames(start, n), store, f"c/{i}.mp4", fps=24, codec=Codec(preset="veryfast"))
        chunks.append(f"c/{i}.mp4")
        start += n
    out = tmp_path / "joined.mp4"
    assert join_chunks(store, chunks, out, {"settings": {"seed": 3}}) == sum(lengths)
    joined = read_frames(out)  # decord: an independent reader of what PyAV wrote
    assert len(joined) == sum(lengths)
    assert [_index(f) for f in joined] == [i % 16 for i in range(sum(lengths))]
    each = np.concatenate([read_frames(store.full(c)) for c in chunks])
    assert np.array_equal(joined, each)  # the join is a copy: not one pixel re-encoded
    assert read_metadata(out) == {"settings": {"seed": 3}}


def test_first_frame_repeated_for_a_hold(tmp_path):
    store = Store(tmp_path)
    assert encode_chunk_to_store(_frames(0, 3), store, "c.mp4", fps=8, repeat_first=4) == 6
    got = read_frames(store.full("c.mp4"))
    assert [_index(f) for f in got] == [0, 0, 0, 0, 1, 2]


def test_chunks_with_other_codec_settings_are_refused(tmp_path):
    store = Store(tmp_path)
    encode_chunk_to_store(_frames(0, 2), store, "a.mp4", fps=24)
    encode_chunk_to_store(_frames(2, 2, w=32), store, "b.mp4", fps=24)
    with pytest.raises(InkwalkError, match="cannot be joined"):
        join_chunks(store, ["a.mp4", "b.mp4"], tmp_path / "x.mp4")
