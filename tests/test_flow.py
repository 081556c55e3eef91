"""Optical flow backends: DIS (weight-free) and torchvision RAFT from registry weights."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inkwalk.errors import InkwalkError
from inkwalk.flow import get_flow_backend
from inkwalk.flow.dis import DISFlow
from inkwalk.flow.raft import RAFTFlow, pad_amounts

from helpers import shifted_texture as texture


@pytest.mark.parametrize(("preset", "finest_scale", "tolerance"),
                         [("fast", None, 0.25), ("fast", 1, 0.06), ("medium", None, 0.06)])
def test_dis_recovers_a_subpixel_translation(preset, finest_scale, tolerance):
    # OpenCV's `fast` stops at 1/4 resolution: about 0.2 px of bias; refined to 1/2 (our default,
    # finest_scale=1) and `medium` land within 0.06 px.
    a, b = texture(96, 128), texture(96, 128, 1.6, -0.7)
    flow = DISFlow(preset, finest_scale=finest_scale).flow(a, b)
    assert flow.shape == (1, 2, 96, 128) and flow.dtype == np.float32
    inner = flow[0, :, 12:-12, 12:-12]
    assert np.median(inner[0]) == pytest.approx(1.6, abs=tolerance)
    assert np.median(inner[1]) == pytest.approx(-0.7, abs=tolerance)


def test_dis_batch_equals_pairs_and_is_thread_safe():
    frames = np.stack([texture(64, 80, 0.8 * i, 0.3 * i) for i in range(5)])
    dis = get_flow_backend("dis")
    batch = dis.flow(frames[:-1], frames[1:])
    singles = [dis.flow(frames[i], frames[i + 1])[0] for i in range(4)]
    # OpenCV's own threads make DIS reproducible to ~3e-3 px, not bit-exact
    np.testing.assert_allclose(batch, np.stack(singles), atol=2e-2)
    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        for _ in range(5):
            results[k] = dis.flow(frames[:-1], frames[1:])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        np.testing.assert_allclose(results[k], batch, atol=2e-2)


def test_flow_input_validation():
    dis = get_flow_backend("dis")
    with pytest.raises(ValueError):
        dis.flow(texture(32, 32), texture(32, 40))
    with pytest.raises(ValueError):
        dis.flow(texture(32, 32).astype(np.float32), texture(32, 32).astype(np.float32))
    with pytest.raises(InkwalkError, match="dis"):
        get_flow_backend("farneback")


@pytest.mark.parametrize(("h", "w", "ph", "pw"), [(60, 75, 68, 53), (130, 201, 6, 7), (128, 136, 0, 0)])
def test_raft_padding_amounts(h, w, ph, pw):
    assert pad_amounts(h, w) == (ph, pw)


def test_raft_small_runs_on_tiny_weights_and_crops_back(tiny_models):
    raft = RAFTFlow("raft-small", models_dir=tiny_models, device="cpu", iters=2)
    a = np.stack([texture(60, 75, seed=1), texture(61, 75, seed=2)[:60]])
    b = np.stack([texture(60, 75, 1.0, 0.5, seed=1), texture(61, 75, seed=3)[:60]])
    flow = raft.flow(a, b)
    assert flow.shape == (2, 2, 60, 75) and flow.dtype == np.float32 and np.all(np.isfinite(flow))
    # the crop is exactly the top-left of the network's flow on the edge-padded input
    with torch.inference_mode():
        x0 = F.pad(torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1, (0, 53, 0, 68), mode="replicate")
        x1 = F.pad(torch.from_numpy(b).permute(0, 3, 1, 2).float() / 127.5 - 1, (0, 53, 0, 68), mode="replicate")
        full = raft.net(x0, x1, num_flow_updates=2)[-1].numpy()
    np.testing.assert_allclose(flow, full[:, :, :60, :75], atol=1e-4)
    # a batch equals a loop over its pairs
    np.testing.assert_allclose(flow[1:], raft.flow(a[1], b[1]), atol=1e-4)


def test_raft_by_name_and_missing_weights(tiny_models, tmp_path):
    backend = get_flow_backend("raft", models_dir=tiny_models, device="cpu")
    assert backend.name == "raft-large"
    with pytest.raises(InkwalkError, match="raft-small"):
        get_flow_backend("raft-small", models_dir=tmp_path, device="cpu")
