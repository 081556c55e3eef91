"""torchvision RAFT (large or small) as a flow backend.

Weights are torchvision state-dict files found through the model registry
(`inkwalk.models.weights_file`). RAFT works at 1/8 resolution with a 4-level correlation
pyramid, so inputs are edge-padded to a multiple of 8 (and at least 128 px) and the flow is
cropped back to the input size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from inkwalk.flow import as_batch

MIN_SIDE = 128  # torchvision RAFT needs feature maps of at least 16 px at 1/8 resolution


def default_device(device=None) -> torch.device:
    """The given device, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pad_amounts(height: int, width: int) -> tuple[int, int]:
    """Bottom and right padding that make a frame RAFT-sized (multiple of 8, >= 128)."""
    def target(n: int) -> int:
        return max(MIN_SIDE, -(-n // 8) * 8)

    return target(height) - height, target(width) - width


class RAFTFlow:
    """RAFT flow, batched; `iters` refinement updates (torchvision's default is 12)."""

    def __init__(self, name: str = "raft-large", models_dir=None, device=None, path=None,
                 iters: int = 12, batch_size: int = 8):
        from torchvision.models.optical_flow import raft_large, raft_small

        from inkwalk.models import weights_file

        self.name = name
        self.device = default_device(device)
        self.iters = int(iters)
        self.batch_size = int(batch_size)
        file = weights_file(name, path=path, models_dir=models_dir)
        net = raft_small(weights=None) if name == "raft-small" else raft_large(weights=None)
        state = torch.load(file, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        self.net = net.eval().to(self.device)

    @torch.inference_mode()
    def flow(self, frames0: np.ndarray, frames1: np.ndarray) -> np.ndarray:
        a, b = as_batch(frames0, frames1)
        n, h, w = a.shape[:3]
        pad_h, pad_w = pad_amounts(h, w)
        out = np.empty((n, 2, h, w), dtype=np.float32)
        for start in range(0, n, self.batch_size):
            stop = min(n, start + self.batch_size)
            x0 = self._prepare(a[start:stop], pad_h, pad_w)
            x1 = self._prepare(b[start:stop], pad_h, pad_w)
            flows = self.net(x0, x1, num_flow_updates=self.iters)[-1]
            out[start:stop] = flows[:, :, :h, :w].float().cpu().numpy()
        return out

    def _prepare(self, frames: np.ndarray, pad_h: int, pad_w: int) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float()
        x = x / 127.5 - 1.0
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return x
