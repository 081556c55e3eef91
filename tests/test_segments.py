"""A collection as pieces: the frame layout is ArtWalks' formula, keys follow content."""

from __future__ import annotations


import numpy as np
import pytest

from inkwalk.artwalks import model_identities
from inkwalk.chunks import Codec
from inkwalk.segments import assign_keys, painting_key, piece_frame_limit, piece_frames, plan_pieces, walk_key
from inkwalk.walk_settings import WalkSettings, walk_frame_count


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("k,m,n,hold,limit", [(2, 0, 0, 0, 8), (3, 2, 5, 0.5, 4), (5, 1, 24, 1.0, 7),
                                              (2, 5, 24, 0, 64), (4, 0, 3, 2.0, 1), (2, 0, 9, 0, 2)])
def test_pieces_cover_the_documented_frame_count(k, m, n, hold, limit, loop):
    ws = WalkSettings(preset="offline", keyframes=m, keyframer="kandinsky" if m else "none", frames=n,
                      hold=hold, fps=8, loop=loop)
    pieces = plan_pieces(k, ws, max_frames=limit)
    walks = k if loop else k - 1  # a loop adds the walk P_k -> P_1 and holds P_1 again at the end
    assert sum(p.frames for p in pieces) == walk_frame_count(k, ws) == \
        walks * (m + 1) * (n + 1) + 1 + (walks + 1) * round(hold * 8)
    assert all(1 <= p.distinct <= limit for p in pieces)
    assert [p.index for p in pieces] == list(range(len(pieces)))
    # every step's times, in order, exactly once
    for walk in range(walks):
        for step in range(m + 1):
            times = [t for p in pieces if p.walk == walk and p.step == step for t in p.times]
            assert len(times) == n and times == sorted(times)
    last = pieces[-1]
    assert last.walk is None and last.frames == 1 + ws.hold_frames and not last.times


def test_piece_size_bounds_the_upscaled_frames_in_memory():
    small = WalkSettings(preset="offline", size=(256, 256))
    big = WalkSettings(preset="offline", size=(1920, 1080), upscale="3840x2160", upscaler="lanczos")
    assert piece_frame_limit(small) == 16  # small frames: the piece is also the unit of parallel work
    assert 3840 * 2160 * 3 * piece_frame_limit(big) <= 256 * 1024 * 1024 < 3840 * 2160 * 3 * (piece_frame_limit(big) + 1)


def test_keys_follow_content_settings_and_models():
    ws = WalkSettings(preset="offline", frames=4, hold=1, fps=8)
    models = model_identities(ws)
    base, walks = assign_keys(plan_pieces(3, ws), ["a", "b", "c"], ws, models, Codec())
    keys = [p.key for p in base]
    assert len(set(keys)) == len(keys) and len(walks) == 2
    again, _ = assign_keys(plan_pieces(3, ws), ["a", "b", "c"], ws, models, Codec())
    assert [p.key for p in again] == keys
    # a shared walk keeps its keys in another collection
    other, _ = assign_keys(plan_pieces(3, ws), ["a", "b", "z"], ws, models, Codec())
    assert other[0].key == keys[0] and other[1].key != keys[1] and other[2].key != keys[2]
    # hold changes only the pieces that hold a painting; the seed cannot change a walk without keyframes
    held, _ = assign_keys(plan_pieces(3, ws.with_changes(hold=2)), ["a", "b", "c"], ws.with_changes(hold=2), models, Codec())
    assert [p.key == q.key for p, q in zip(base, held)] == [not p.start for p in base]
    seeded, _ = assign_keys(plan_pieces(3, ws), ["a", "b", "c"], ws.with_changes(seed=9), models, Codec())
    assert [p.key for p in seeded] == keys
    for changed in (ws.with_changes(strength=0.5), ws.with_changes(size=(64, 64))):
        assert assign_keys(plan_pieces(3, changed), ["a", "b", "c"], changed, models, Codec())[0][0].key != keys[0]
    assert assign_keys(plan_pieces(3, ws), ["a", "b", "c"], ws, models, Codec(crf=20))[0][0].key != keys[0]


def test_piece_frames_start_with_the_node_then_interpolate():
    class Halfway:
        def between(self, a, b, times):
            return np.stack([((1 - t) * a + t * b).astype(np.uint8) for t in times])

    nodes = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (0, 100, 200)])
    ws = WalkSettings(preset="offline", frames=3, strength=0)
    first, *_ = [p for p in plan_pieces(2, ws.with_changes(keyframes=1, keyframer="kandinsky")) if p.step == 1]
    got = piece_frames(nodes, first, Halfway())
    assert got[:, 0, 0, 0].tolist() == [100, 125, 150, 175]


def test_a_loop_adds_the_walk_back_to_the_first_painting_and_shares_the_others():
    ws = WalkSettings(preset="offline", frames=4, hold=1, fps=8)
    looped = ws.with_changes(loop=True)
    models = model_identities(ws)
    line, line_walks = assign_keys(plan_pieces(3, ws), ["a", "b", "c"], ws, models, Codec())
    loop, loop_walks = assign_keys(plan_pieces(3, looped), ["a", "b", "c"], looped, models, Codec())
    assert loop_walks == [*line_walks, walk_key("c", "a", ws, models)]
    assert {p.key for p in line[:-1]} <= {p.key for p in loop}  # the straight walks' chunks are shared
    ends_on = {p.key for p in assign_keys(plan_pieces(2, ws), ["c", "a"], ws, models, Codec())[0]}
    assert loop[-1].key in ends_on  # held at the end: P_1 ("a"), as a collection ending on it would
    assert painting_key("a", ws, models) != painting_key("c", ws, models)
