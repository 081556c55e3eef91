"""Frame timing (our S-curve, the authors' release easing) and the ArtWalks embedding weightings."""

from __future__ import annotations

import numpy as np
import pytest

from inkwalk.errors import InkwalkError
from inkwalk.schedules import embedding_weights, frame_times, s_curve_times


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0, 3.0])
@pytest.mark.parametrize("n", [1, 2, 7, 24])
def test_s_curve_monotone_symmetric_inside(n, strength):
    t = s_curve_times(n, strength)
    assert t.shape == (n,)
    assert np.all(t > 0) and np.all(t < 1)  # endpoints belong to the keyframes
    assert np.all(np.diff(t) > 0)
    np.testing.assert_allclose(t + t[::-1], 1.0, atol=1e-12)


def test_s_curve_strength_zero_is_even_spacing():
    np.testing.assert_allclose(s_curve_times(9, 0.0), np.arange(1, 10) / 10, atol=1e-15)


def test_s_curve_eases_in_and_out():
    t = s_curve_times(9, 1.0)
    gaps = np.diff(np.concatenate([[0.0], t, [1.0]]))
    assert gaps[0] < gaps[len(gaps) // 2] and gaps[-1] < gaps[len(gaps) // 2]
    stronger = np.diff(np.concatenate([[0.0], s_curve_times(9, 3.0), [1.0]]))
    assert stronger[0] < gaps[0]
    assert s_curve_times(1, 2.0)[0] == pytest.approx(0.5)


def test_s_curve_rejects_bad_input():
    assert s_curve_times(0).shape == (0,)
    with pytest.raises(InkwalkError):
        s_curve_times(4, -0.5)
    with pytest.raises(InkwalkError):
        s_curve_times(-1)
    with pytest.raises(InkwalkError):
        s_curve_times(4, 1000.0)
    t = s_curve_times(2000, 3.0)  # long segments at a strong curve stay strictly inside (0, 1)
    assert t[0] > 0 and t[-1] < 1 and np.all(np.diff(t) > 0)
    with pytest.raises(InkwalkError, match="precision"):  # said, not silently rounded to a keyframe
        s_curve_times(2000, 10.0)


def test_weightings_at_known_points():
    # m = 3: t = 1/4, 1/2, 3/4
    np.testing.assert_allclose(embedding_weights(3, "logit", 15.0),
                               [0.5 + np.log(1 / 3) / 15, 0.5, 0.5 + np.log(3) / 15], atol=1e-12)
    np.testing.assert_allclose(embedding_weights(3, "sinh"),
                               [0.5 + np.sinh(-1) / 7.27, 0.5, 0.5 + np.sinh(1) / 7.27], atol=1e-12)
    np.testing.assert_allclose(embedding_weights(3, "linear"), [0.25, 0.5, 0.75])
    # a small scale saturates: 0.5 + log(1/9) / 1 < 0 is clipped to 0
    assert embedding_weights(9, "logit", 1.0)[0] == 0.0
    assert embedding_weights(9, "logit", 1.0)[-1] == 1.0


@pytest.mark.parametrize("kind", ["logit", "sinh", "linear"])
def test_weightings_monotone_bounded_and_never_at_endpoints(kind):
    with np.errstate(all="raise"):  # logit(0) or logit(1) would raise here
        w = embedding_weights(500, kind, 15.0)
    assert np.all(np.isfinite(w)) and np.all(w >= 0) and np.all(w <= 1)
    assert np.all(np.diff(w) >= 0) and w[-1] > w[0]
    np.testing.assert_allclose(w + w[::-1], 1.0, atol=1e-12)


def test_weightings_reject_unknown_kind_and_bad_scale():
    with pytest.raises(InkwalkError, match="logit"):
        embedding_weights(3, "cosine")
    with pytest.raises(InkwalkError):
        embedding_weights(3, "logit", 0.0)


def _release_segment_times(frames: int) -> np.ndarray:
    """The frame times of one segment as the authors' generate_videos_alpha.py lays them out: FILM
    makes the frames at 1/4 and 3/4, then 34 %, 32 % and 34 % of the segment's frames run evenly from
    0 to 1/4, 1/4 to 3/4 and 3/4 to 1 (each run starts on its first node)."""
    times = []
    for share, start, end in ((0.34, 0.0, 0.25), (0.32, 0.25, 0.75), (0.34, 0.75, 1.0)):
        count = round(share * frames)
        times += [start + (end - start) * k / count for k in range(count)]
    return np.array(times)


def test_release_easing_is_the_releases_frame_layout():
    release = _release_segment_times(100)              # 34 + 32 + 34 frames, the first on the keyframe
    np.testing.assert_allclose(frame_times(99, "release"), release[1:], atol=1e-12)
    t = frame_times(24, "release")
    assert np.all(np.diff(t) > 0) and 0 < t[0] and t[-1] < 1
    np.testing.assert_allclose(t + t[::-1], 1.0, atol=1e-12)      # symmetric, like the S-curve
    with pytest.raises(InkwalkError, match="easing"):
        frame_times(3, "cubic")


def test_release_easing_is_gentler_than_the_s_curve_at_strength_one():
    n = 9999
    release = frame_times(n, "release")
    assert np.abs(s_curve_times(n, 1.0) - release).max() == pytest.approx(0.0884, abs=5e-4)
    fits = {strength: np.abs(s_curve_times(n, strength) - release).max() for strength in np.arange(0, 1.001, 0.01)}
    best = min(fits, key=fits.get)
    assert best == pytest.approx(0.41, abs=0.015) and fits[best] < 0.033


def test_release_keyframe_grid_starts_on_a_and_stops_short_of_b():
    # the release: weights sampler(i / S) for i = 0..S-1, rounded to 3 decimals (S = 5)
    expected = [round(float(np.sinh(4 * (i / 5) - 2) / 7.27 + 0.5), 3) for i in range(5)]
    np.testing.assert_array_equal(embedding_weights(5, "sinh", grid="release"), expected)
    assert expected == [0.001, 0.292, 0.444, 0.556, 0.708]        # the last keyframe is 71 % B, not B
    assert embedding_weights(5, "logit", grid="release")[0] == 0.0  # logit(0) = -inf, clipped
    assert embedding_weights(0, "sinh", grid="release").shape == (0,)
    with pytest.raises(InkwalkError, match="grid"):
        embedding_weights(3, "sinh", grid="edges")


def test_release_preset_paces_walks_like_the_release():
    from inkwalk.walk_settings import WalkSettings, walk_frame_count

    s = WalkSettings(preset="release")
    assert (s.weighting, s.keyframe_grid, s.easing, s.fps, s.keyframes) == ("sinh", "release", "release", 30.0, 5)
    # the release's own length formula (utils.py): n * F + (n - 1) * (S + 1) * I seconds, here S=5, I=F=10 s
    for paintings in (2, 4):
        seconds = paintings * 10 + (paintings - 1) * 6 * 10
        assert walk_frame_count(paintings, s) == seconds * 30 + 1   # + the last painting's own frame


def _s_curve_reference(frames: int, strength: float) -> list[float]:
    """DESIGN.md's S-curve written out term by term: u^a / (u^a + (1 - u)^a), a = 1 + strength,
    at u = i / (frames + 1)."""
    a = 1 + strength
    return [(i / (frames + 1)) ** a / ((i / (frames + 1)) ** a + (1 - i / (frames + 1)) ** a)
            for i in range(1, frames + 1)]


def test_walks_are_planned_at_the_named_easing():
    """The pieces of a step, joined, run through the easing's frame times: the release's layout
    (its own three runs), the S-curve's formula; also when a step is split over several pieces."""
    from inkwalk.segments import plan_pieces
    from inkwalk.walk_settings import WalkSettings

    for easing in ("release", "s-curve"):
        settings = WalkSettings(preset="offline", frames=99, easing=easing, strength=1.5)
        expected = _release_segment_times(100)[1:] if easing == "release" else _s_curve_reference(99, 1.5)
        for max_frames in (128, 40):
            step = [p for p in plan_pieces(2, settings, max_frames=max_frames) if (p.walk, p.step) == (0, 0)]
            assert len(step) == (1 if max_frames == 128 else 3)
            np.testing.assert_allclose([t for p in step for t in p.times], expected, rtol=0, atol=1e-12)
