"""ConCLVD loss (eq. 9-11) against a direct loop, and where its gradient goes."""

from __future__ import annotations

import math

import pytest
import torch

from inkwalk.conclvd.loss import conclvd_loss, contrastive_loss


def _loop_loss(emb: torch.Tensor, tau: float, m: int) -> float:
    """Eq. 9-11 written literally with 1-based frame indices, averaged over videos."""
    total = 0.0
    for video in emb.double():
        n = video.shape[0]

        def r(i: int, j: int) -> float:
            a, b = video[i - 1], video[j - 1]
            return float(a @ b / (a.norm() * b.norm()))

        losses = []
        for i in range(1, n):
            pos = math.exp(r(i, i + 1) / tau)
            neg = sum(math.exp(r(i, k) / tau) for k in range(1, n + 1) if abs(k - i) > m)
            losses.append(-math.log(pos / (pos + neg)))
        total += sum(losses) / (n - 1)
    return total / emb.shape[0]


@pytest.mark.parametrize("frames,margin,tau", [(8, 4, 0.07), (12, 2, 0.5), (8, 1, 1.0)])
def test_contrastive_loss_equals_direct_loop(frames, margin, tau):
    torch.manual_seed(frames + margin)
    emb = torch.randn(3, frames, 16)
    assert float(contrastive_loss(emb, tau=tau, margin=margin)) == pytest.approx(_loop_loss(emb, tau, margin), rel=1e-5)


def test_anchors_without_negatives_contribute_zero():
    torch.manual_seed(0)
    emb = torch.randn(2, 5, 16, requires_grad=True)
    loss = contrastive_loss(emb, tau=0.07, margin=4)          # 5 frames, m = 4: no anchor has a negative
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.count_nonzero(emb.grad) == 0
    # 6 frames: only anchor 1 has a negative (frame 6); anchors 2..5 add 0 but still count in the mean.
    emb6 = torch.randn(1, 6, 16)
    assert float(contrastive_loss(emb6, margin=4)) == pytest.approx(_loop_loss(emb6, 0.07, 4), rel=1e-5)
    assert float(contrastive_loss(emb6, margin=4)) > 0


def test_total_loss_weights_the_terms():
    torch.manual_seed(0)
    noise, pred, emb = torch.randn(1, 8, 4, 4, 4), torch.randn(1, 8, 4, 4, 4), torch.randn(1, 8, 16)
    out = conclvd_loss(noise, pred, emb, lambda_diff=2.0, lambda_con=0.5)
    assert float(out["loss_diff"]) == pytest.approx(float(((noise - pred) ** 2).mean()))
    assert float(out["loss"]) == pytest.approx(2.0 * float(out["loss_diff"]) + 0.5 * float(out["loss_con"]))


def test_gradient_reaches_adapter_and_motion_modules_only(conclvd_tiny):
    from inkwalk.conclvd import training_step

    model = conclvd_tiny
    model.zero_grad(set_to_none=True)
    generator = torch.Generator().manual_seed(0)
    batch = {"latents": torch.randn(1, 8, 4, 8, 8), "text_embeds": torch.randn(1, 77, 32)}
    out = training_step(model, batch, generator=generator)
    assert set(out) == {"loss", "loss_diff", "loss_con"} and float(out["loss_con"].detach()) > 0
    out["loss"].backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        else:
            assert p.grad is None, name
    adapter = [p.grad.abs().sum() for p in model.noise_adapter.parameters()]
    motion = [p.grad.abs().sum() for n, p in model.unet.named_parameters() if p.requires_grad]
    assert all(g > 0 for g in adapter)
    assert sum(g > 0 for g in motion) >= 0.9 * len(motion)
    model.zero_grad(set_to_none=True)
