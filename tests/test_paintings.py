"""Procedural paintings: deterministic, seed-dependent, and pictures rather than noise."""

from __future__ import annotations

import numpy as np
import pytest

from inkwalk.errors import InkwalkError
from inkwalk.paintings import PAINTINGS, collection, draw


@pytest.mark.parametrize("name", list(PAINTINGS))
def test_same_seed_same_pixels_other_seed_other_scene(name):
    a = draw(name, (160, 100), seed=3)
    assert a.shape == (100, 160, 3) and a.dtype == np.uint8
    assert np.array_equal(a, draw(name, (160, 100), seed=3))
    assert np.abs(a.astype(int) - draw(name, (160, 100), seed=4)).mean() > 3


@pytest.mark.parametrize("name", list(PAINTINGS))
def test_looks_like_ink_on_paper_not_noise(name):
    img = draw(name, (256, 160), seed=0).astype(np.float32)
    grey = img.mean(-1)
    # mostly light paper with real dark ink somewhere
    assert np.median(grey) > 150 and grey.min() < 90
    # smooth washes: neighbouring pixels differ far less than in noise of the same spread
    step = np.abs(np.diff(grey, axis=1)).mean()
    shuffled = np.random.default_rng(0).permutation(grey.ravel()).reshape(grey.shape)
    assert step < 0.25 * np.abs(np.diff(shuffled, axis=1)).mean()
    # warm paper: red >= blue on average, and a red seal somewhere
    assert img[..., 0].mean() > img[..., 2].mean()
    assert ((img[..., 0] > 140) & (img[..., 1] < 90)).any()


def test_collection_alternates_scenes_and_bad_requests_fail_clearly():
    paintings = collection(3, (64, 48))
    assert len(paintings) == 3 and all(p.shape == (48, 64, 3) for p in paintings)
    assert not np.array_equal(paintings[0], paintings[2])
    with pytest.raises(InkwalkError, match="unknown painting"):
        draw("portrait")
    with pytest.raises(InkwalkError, match="at least 16x16"):
        draw("river", (8, 8))
