"""Timing of generated frames (easing) and weighting of embedding mixes (ArtWalks).

Frame times come from an easing curve applied to an even grid ``u_i = i / (n + 1)``, strictly
inside (0, 1): the endpoints belong to the keyframes themselves. Two curves, by name:
``s-curve`` (ours, ``u^a / (u^a + (1-u)^a)``) and ``release`` (the authors' released code).

Keyframe weights use the grid ``t_i = i / (m + 1)`` by default ("interior": every keyframe a true
mix, `logit` finite) or the release's ``t_i = i / m`` from ``i = 0`` ("release").
"""

from __future__ import annotations

import numpy as np

from inkwalk.errors import InkwalkError

WEIGHTINGS = ("logit", "sinh", "linear")
EASINGS = ("s-curve", "release")
KEYFRAME_GRIDS = ("interior", "release")
MAX_STRENGTH = 10.0
# The release's easing (generate_videos_alpha.py): FILM makes the frames at 1/4 and 3/4 of a segment,
# then 34 %, 32 % and 34 % of the segment's frames go evenly over [0, 1/4], [1/4, 3/4], [3/4, 1].
RELEASE_EASING = ((0.0, 0.34, 0.66, 1.0), (0.0, 0.25, 0.75, 1.0))


def _count(n: int, what: str) -> int:
    if int(n) != n or n < 0:
        raise InkwalkError(f"{what} must be a non-negative integer, got {n!r}")
    return int(n)


def _even_times(n: int, what: str) -> np.ndarray:
    n = _count(n, what)
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


def frame_times(n: int, easing: str = "s-curve", strength: float = 1.0) -> np.ndarray:
    """Times in (0, 1) of the `n` frames between two keyframes under the named easing.

    - ``s-curve``: `s_curve_times(n, strength)`;
    - ``release``: the authors' release, piecewise linear through (0, 0), (0.34, 0.25),
      (0.66, 0.75), (1, 1) (`strength` unused): gentler than the s-curve at strength 1 (at most
      0.088 apart; strength 0.41 is the closest s-curve, within 0.032).
    """
    if easing == "s-curve":
        return s_curve_times(n, strength)
    if easing == "release":
        return np.interp(_even_times(n, "number of frames"), *RELEASE_EASING)
    raise InkwalkError(f"unknown easing {easing!r}: choose one of {', '.join(EASINGS)}")


def embedding_weights(m: int, kind: str = "logit", scale: float = 15.0, grid: str = "interior") -> np.ndarray:
    """Weights ``w_i = f(t_i)`` of painting B in the `m` mixed embeddings.

    `grid`: ``interior`` (ours): ``t_i = i/(m+1)``, ``i = 1..m``; ``release``: ``t_i = i/m``,
    ``i = 0..m-1`` with weights rounded to 3 decimals, as the authors' release samples them (its
    first keyframe sits on A, where `logit` is ``-inf`` and clips to 0; its last stops at
    ``(m-1)/m``, short of B). Weightings `f`:

    - ``logit`` (ArtWalks paper): ``0.5 + logit(t) / scale`` clipped to [0, 1]; a large scale
      keeps keyframes near an even mix and leaves the change of concept to the motion stage;
    - ``sinh`` (authors' release default): ``0.5 + sinh(4t - 2) / 7.27`` (clipped, it spans
      about [0.001, 0.999]);
    - ``linear``: ``t``.
    """
    if grid == "interior":
        t = _even_times(m, "number of keyframes")
    elif grid == "release":
        m = _count(m, "number of keyframes")
        t = np.arange(m, dtype=np.float64) / max(m, 1)
    else:
        raise InkwalkError(f"unknown keyframe grid {grid!r}: choose one of {', '.join(KEYFRAME_GRIDS)}")
    if kind == "logit":
        if not np.isfinite(scale) or scale <= 0:
            raise InkwalkError(f"logit weighting scale must be > 0, got {scale!r}")
        with np.errstate(divide="ignore"):   # t = 0 on the release grid: logit is -inf, clipped to 0
            w = 0.5 + np.log(t / (1.0 - t)) / float(scale)
    elif kind == "sinh":
        w = 0.5 + np.sinh(4.0 * t - 2.0) / 7.27
    elif kind == "linear":
        w = t
    else:
        raise InkwalkError(f"unknown weighting {kind!r}: choose one of {', '.join(WEIGHTINGS)}")
    w = np.clip(w, 0.0, 1.0)
    return np.round(w, 3) if grid == "release" else w
