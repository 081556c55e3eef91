"""Identical frames of a batch found once: a held painting or a repeated frame is computed once.

Super-resolution is most of a walk's CPU time, and a walk repeats frames (held paintings, steps that
meet at a node, a source video's still shots); upscaling each distinct frame once and repeating the
result gives the same output for less work.
"""

from __future__ import annotations

import hashlib

import numpy as np


def distinct_frames(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the first occurrence of each distinct frame, index into those for every frame).

    ``frames[first][inverse]`` equals ``frames``; frames are compared by a 16-byte BLAKE2 digest of
    their bytes (shape and dtype are shared by the batch).
    """
    seen: dict[bytes, int] = {}
    first, inverse = [], np.empty(len(frames), np.intp)
    for i, frame in enumerate(frames):
        digest = hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest()
        if digest not in seen:
            seen[digest] = len(first)
            first.append(i)
        inverse[i] = seen[digest]
    return np.asarray(first, np.intp), inverse
