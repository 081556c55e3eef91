"""Initial noise of a scroll, as FreeNoise draws it.

`random`: i.i.d. Gaussian noise for every latent frame (what a single clip uses). `shuffle_context`
(default, FreeNoise's noise rescheduling): the noise is drawn for all frames, then from frame `window`
on, every block of `stride` frames is overwritten by a random permutation of the `stride` frames
`window` frames earlier, so distant windows start from the same noise frames in a different order
and keep one look across the whole video. Draw and permutations come from the one `generator`,
in FreeNoise's order, so the same seed gives diffusers' noise exactly.
"""

from __future__ import annotations

import torch
from diffusers.utils.torch_utils import randn_tensor

from inkwalk.errors import InkwalkError

NOISE_TYPES = ("shuffle_context", "random")


def initial_noise(shape: tuple[int, ...], window: int, stride: int, noise_type: str = "shuffle_context",
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Float32 noise of `shape` (`B×C×N×h×w`, on the CPU) for windows of `window` frames `stride` apart."""
    if noise_type not in NOISE_TYPES:
        raise InkwalkError(f"noise {noise_type!r}: choose one of {', '.join(NOISE_TYPES)}")
    noise = randn_tensor(shape, generator=generator, device=torch.device("cpu"), dtype=torch.float32)
    if noise_type == "random":
        return noise
    frames = shape[2]
    for start in range(window, frames, stride):
        source = torch.arange(start - window, min(frames, start - window + stride))
        shuffled = source[torch.randperm(len(source), generator=generator)]
        end = min(frames, start + len(source))
        noise[:, :, start:end] = noise[:, :, shuffled[:end - start]]
    return noise
