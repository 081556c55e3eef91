"""ConCLVD's objective (paper eq. 9-13), vectorised over frames and videos.

`r(i, j)` = cosine of `g(ε_i)` and `g(ε_j)` (eq. 9);
`l(i) = -log( e^{r(i,i+1)/τ} / (e^{r(i,i+1)/τ} + Σ_{k: |k-i| > m} e^{r(i,k)/τ}) )` (eq. 10), the
consecutive frame is the positive, frames more than `m` apart the negatives; an anchor with no
negatives gives `-log 1 = 0`; `L_con = mean_{i=1..N-1} l(i)` per video (eq. 11), then the mean
over videos; `L = λ_diff · MSE(ε, ε̂) + λ_con · L_con` (eq. 13).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_loss(embeddings: torch.Tensor, tau: float = 0.07, margin: int = 4) -> torch.Tensor:
    """`L_con` of eq. 11 for `embeddings` `B×N×D` (the noise adapter's output), mean over the batch."""
    batch, frames, _ = embeddings.shape
    if frames < 2:
        return embeddings.sum() * 0.0
    z = F.normalize(embeddings.float(), dim=-1)
    logits = z @ z.transpose(1, 2) / tau                                   # B×N×N, r(i,k)/τ
    anchors = torch.arange(frames - 1, device=z.device)
    positive = logits[:, anchors, anchors + 1]                             # B×(N-1)
    k = torch.arange(frames, device=z.device)
    negative = (k[None, :] - anchors[:, None]).abs() > margin              # (N-1)×N
    masked = logits[:, :-1].masked_fill(~negative, float("-inf"))          # B×(N-1)×N
    denominator = torch.logsumexp(torch.cat([positive[..., None], masked], dim=-1), dim=-1)
    return (denominator - positive).mean()


def conclvd_loss(noise: torch.Tensor, noise_pred: torch.Tensor, embeddings: torch.Tensor, *,
                 lambda_diff: float = 1.0, lambda_con: float = 0.07, tau: float = 0.07,
                 margin: int = 4) -> dict[str, torch.Tensor]:
    """`{loss, loss_diff, loss_con}` of eq. 13 (the caller backprops `loss`)."""
    loss_diff = F.mse_loss(noise_pred.float(), noise.float())
    loss_con = contrastive_loss(embeddings, tau=tau, margin=margin)
    return {"loss": lambda_diff * loss_diff + lambda_con * loss_con, "loss_diff": loss_diff, "loss_con": loss_con}
