"""Frame interpolation: `blend`, `flow-warp`, `sofp` (ConCLVD eq. 14) and `film` (ArtWalks).

``get_interpolator(method, flow=...)`` returns an object whose
``between(frame0, frame1, times) -> len(times)×H×W×3 uint8`` makes the frames at the given
times in (0, 1); `interpolate_clip` / `interpolate_video` raise a clip's frame rate by
`factor` (``N -> (N - 1)·factor + 1``; factor 2 is ``N -> 2N - 1``).
"""

from __future__ import annotations

from inkwalk.interpolate.pipeline import (
    DEFAULT_METHOD,
    METHODS,
    get_interpolator,
    interpolate_clip,
    interpolate_frames,
    interpolate_video,
    output_frame_count,
)

__all__ = ["DEFAULT_METHOD", "METHODS", "get_interpolator", "interpolate_clip", "interpolate_frames",
           "interpolate_video", "output_frame_count"]
