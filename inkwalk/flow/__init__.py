"""Optical flow backends behind one interface.

``get_flow_backend(name).flow(frames0, frames1)`` takes uint8 RGB frames (``N×H×W×3`` or a
single ``H×W×3`` pair) and returns float32 flow ``N×2×H×W`` in pixels (channel 0 = x, 1 = y):
the displacement of each pixel of ``frames0`` to its position in ``frames1``, so
``frames0[y, x] ≈ frames1[y + v, x + u]``.

Backends: ``dis`` (OpenCV DIS, weight-free, the offline default) and ``raft-large`` /
``raft-small`` (torchvision RAFT; ``raft`` means ``raft-large``).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from inkwalk.errors import InkwalkError

FLOW_BACKENDS = ("dis", "raft-large", "raft-small", "raft")


class FlowBackend(Protocol):
    name: str

    def flow(self, frames0: np.ndarray, frames1: np.ndarray) -> np.ndarray:
        """Flow from each frame of `frames0` to the matching frame of `frames1`, ``N×2×H×W``."""
        ...


def as_batch(frames0: np.ndarray, frames1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair of frame batches (or single frames) as two ``N×H×W×3`` uint8 arrays."""
    a, b = np.asarray(frames0), np.asarray(frames1)
    if a.ndim == 3:
        a = a[None]
    if b.ndim == 3:
        b = b[None]
    if a.ndim != 4 or a.shape[-1] != 3 or a.shape != b.shape:
        raise ValueError(f"flow needs two equally shaped N×H×W×3 batches, got {frames0.shape} and {frames1.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"flow needs uint8 frames, got {a.dtype} and {b.dtype}")
    return a, b


def get_flow_backend(name: str = "dis", models_dir=None, device=None, path=None) -> FlowBackend:
    """Build a flow backend by name; RAFT weights come from the model registry (`path` overrides)."""
    if name == "dis":
        from inkwalk.flow.dis import DISFlow

        return DISFlow()
    if name in ("raft", "raft-large", "raft-small"):
        from inkwalk.flow.raft import RAFTFlow

        return RAFTFlow("raft-small" if name == "raft-small" else "raft-large",
                        models_dir=models_dir, device=device, path=path)
    raise InkwalkError(f"unknown flow backend {name!r}: choose one of {', '.join(FLOW_BACKENDS)}")
