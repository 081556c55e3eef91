"""Contact sheets: a row of thumbnails of each walk's ``A, K_1..K_m, B``, rows stacked into one image."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def contact_sheet(rows: Sequence[np.ndarray], thumb_height: int = 160, gap: int = 6) -> np.ndarray:
    """One PNG-able image of each walk's ``A, K_1..K_m, B`` (one row per walk) on white."""
    import cv2

    thumbs = []
    for row in rows:
        h, w = row.shape[1:3]
        tw = max(1, round(w * thumb_height / h))
        thumbs.append([cv2.resize(f, (tw, thumb_height), interpolation=cv2.INTER_AREA) for f in row])
    width = max(len(r) * (r[0].shape[1] + gap) for r in thumbs) + gap
    sheet = np.full((len(thumbs) * (thumb_height + gap) + gap, width, 3), 255, np.uint8)
    for i, row in enumerate(thumbs):
        x, y = gap, gap + i * (thumb_height + gap)
        for f in row:
            sheet[y:y + thumb_height, x:x + f.shape[1]] = f
            x += f.shape[1] + gap
    return sheet


def stack_rows(rows: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """Contact-sheet rows (images of one walk's nodes each) stacked on white: one sheet per video."""
    width = max(r.shape[1] for r in rows)
    sheet = np.full((sum(r.shape[0] for r in rows), width, 3), 255, np.uint8)
    y = 0
    for r in rows:
        sheet[y:y + r.shape[0], :r.shape[1]] = r
        y += r.shape[0]
    return sheet
