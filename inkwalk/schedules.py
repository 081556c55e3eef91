"""Timing of generated frames (S-curve easing) and weighting of embedding mixes (ArtWalks).

Both produce numbers strictly inside (0, 1) from an even grid ``t_i = i / (n + 1)``: the
endpoints belong to the keyframes / paintings themselves and are never evaluated, which also
keeps `logit` finite (the authors' release samples ``t = 0`` where logit is ``-inf``).
"""

from __future__ import annotations

import numpy as np

from inkwalk.errors import InkwalkError

WEIGHTINGS = ("logit", "sinh", "linear")
MAX_STRENGTH = 10.0


def _even_times(n: int, what: str) -> np.ndarray:
    if int(n) != n or n < 0:
        raise InkwalkError(f"{what} must be a non-negative integer, got {n!r}")
    n = int(n)
    return np.arange(1, n + 1, dtype=np.float64) / (n + 1)


def s_curve_times(n: int, strength: float = 1.0) -> np.ndarray:
    """Times in (0, 1) of `n` frames between two keyframes, eased in and out.

    ``f(u) = u^a / (u^a + (1 - u)^a)`` with ``a = 1 + strength`` applied to ``u_i = i/(n+1)``:
    a monotone, symmetric (``f(1-u) = 1 - f(u)``) map of (0, 1) onto itself, so frames crowd
    near both keyframes (motion starts and stops gently). ``strength = 0`` is the identity:
    even spacing. Exact times, no power-of-two rounding.
    """
    if not np.isfinite(strength) or not 0 <= strength <= MAX_STRENGTH:
        raise InkwalkError(f"S-curve strength must be between 0 (even spacing) and {MAX_STRENGTH:g}, "
                           f"got {strength!r}")
    u = _even_times(n, "number of frames")
    a = 1.0 + float(strength)
    # u^a / (u^a + (1-u)^a) = 1 / (1 + ((1-u)/u)^a)
    t = 1.0 / (1.0 + np.power((1.0 - u) / u, a))
    if n and not (t[0] > 0.0 and t[-1] < 1.0 and np.all(np.diff(t) > 0)):
        raise InkwalkError(f"{n} frames at S-curve strength {strength:g} crowd closer to the keyframes than "
                           f"float precision can tell apart; lower the strength or the frame count")
    return t


def embedding_weights(m: int, kind: str = "logit", scale: float = 15.0) -> np.ndarray:
    """Weights ``w_i = f(t_i)`` of painting B in the `m` mixed embeddings, ``t_i = i/(m+1)``.

    - ``logit`` (ArtWalks paper): ``0.5 + logit(t) / scale`` clipped to [0, 1]; a large scale
      keeps keyframes near an even mix and leaves the change of concept to the motion stage;
    - ``sinh`` (authors' release default): ``0.5 + sinh(4t - 2) / 7.27`` (clipped, it spans
      about [0.001, 0.999]);
    - ``linear``: ``t``.
    """
    t = _even_times(m, "number of keyframes")
    if kind == "logit":
        if not np.isfinite(scale) or scale <= 0:
            raise InkwalkError(f"logit weighting scale must be > 0, got {scale!r}")
        w = 0.5 + np.log(t / (1.0 - t)) / float(scale)
    elif kind == "sinh":
        w = 0.5 + np.sinh(4.0 * t - 2.0) / 7.27
    elif kind == "linear":
        w = t
    else:
        raise InkwalkError(f"unknown weighting {kind!r}: choose one of {', '.join(WEIGHTINGS)}")
    return np.clip(w, 0.0, 1.0)
