"""S-curve frame timing and the ArtWalks embedding weightings."""

from __future__ import annotations

import numpy as np
import pytest

from inkwalk.errors import InkwalkError
from inkwalk.schedules import embedding_weights, s_curve_times


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
