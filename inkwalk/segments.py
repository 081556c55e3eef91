"""A collection's video as pieces: the unit of work that renders anywhere and is cached by content.

A walk ``P_i -> P_(i+1)`` has nodes ``A, K_1..K_m, B``; step ``j`` moves from node ``j`` to
node ``j + 1`` through ``n`` frames at S-curve times. The video of ``P_1..P_k`` is

    for each walk i, for each step j: node j (held for `hold` if it is a painting), n frames
    then the last painting (the first again when the collection loops), held

which is ArtWalks' ``(k - 1)(m + 1)(n + 1) + 1 + k * round(hold * fps)`` frames; with `loop` the
walk ``P_k -> P_1`` is added: ``k(m + 1)(n + 1) + 1 + (k + 1) * round(hold * fps)``. A step is cut
into *pieces* of at most `max_frames` distinct frames, so the frames of one piece, upscaled,
fit a bounded amount of memory whatever the output size; each piece becomes one chunk file
(`inkwalk.chunks`). A piece is named by a content hash of everything that decides its pixels
(the paintings' bytes, the settings, the models, the codec), so a rerun finds every chunk it
has already made, whoever made it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from inkwalk.chunks import Codec
from inkwalk.walk_settings import WalkSettings, walk_count

LAYOUT_VERSION = 1  # bump when the pieces' content for the same key would change
FRAME_BUDGET_BYTES = 256 * 1024 * 1024  # upscaled frames of one piece, at most (bounds worker memory)
MAX_PIECE_FRAMES = 16  # a piece is also the unit of parallelism and of retry: keep many, small


@dataclass(frozen=True)
class Piece:
    """One chunk of the video.

    `walk` is the walk whose nodes it starts from (None: the last painting alone); `step` the
    node it starts at; `start` whether it begins with that node (written `repeat` times);
    `times` the interpolation times toward node ``step + 1``.
    """

    index: int
    walk: int | None
    step: int
    start: bool
    repeat: int
    times: tuple[float, ...]
    key: str = ""

    @property
    def frames(self) -> int:
        """Frames in the chunk."""
        return (self.repeat if self.start else 0) + len(self.times)

    @property
    def distinct(self) -> int:
        """Frames computed and upscaled for the chunk."""
        return int(self.start) + len(self.times)


def piece_frame_limit(settings: WalkSettings, budget_bytes: int = FRAME_BUDGET_BYTES) -> int:
    """Distinct frames per piece so that its upscaled frames stay within `budget_bytes`."""
    w, h = settings.output_size
    return int(max(1, min(MAX_PIECE_FRAMES, budget_bytes // (w * h * 3))))


def walk_ends(paintings: int, settings: WalkSettings) -> list[tuple[int, int]]:
    """The (from, to) paintings of each walk: ``P_i -> P_(i+1)``, then ``P_k -> P_1`` when it loops."""
    return [(i, (i + 1) % paintings) for i in range(walk_count(paintings, settings))]


def final_painting(paintings: int, settings: WalkSettings) -> int:
    """The painting the video ends on, held: the last one, or the first again when it loops."""
    return 0 if settings.loop else paintings - 1


def plan_pieces(paintings: int, settings: WalkSettings, max_frames: int | None = None) -> list[Piece]:
    """Every piece of the video of `paintings` paintings, in order (keys not yet set)."""
    from inkwalk.schedules import frame_times

    if paintings < 2:
        raise ValueError(f"a collection needs at least 2 paintings, got {paintings}")
    limit = max_frames or piece_frame_limit(settings)
    times = (tuple(float(t) for t in frame_times(settings.frames, settings.easing, settings.strength))
             if settings.frames else ())
    held = 1 + settings.hold_frames
    pieces: list[Piece] = []

    def add(walk: int | None, step: int, start: bool, repeat: int, part: tuple[float, ...]) -> None:
        pieces.append(Piece(len(pieces), walk, step, start, repeat, part))

    for walk in range(walk_count(paintings, settings)):
        for step in range(settings.keyframes + 1):
            repeat = held if step == 0 else 1
            first = times[:limit - 1]
            add(walk, step, True, repeat, first)
            for at in range(len(first), len(times), limit):
                add(walk, step, False, 1, times[at:at + limit])
    add(None, 0, True, held, ())
    return pieces


def content_key(meta: dict[str, Any]) -> str:
    """32 hex digits naming whatever `meta` (JSON-able) describes: chunks, walks, clips, renders."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True, default=list).encode()).hexdigest()[:32]


def walk_key(a: str, b: str, settings: WalkSettings, models: dict[str, Any]) -> str:
    """Names the nodes of a walk: both paintings' content hashes, pixel settings, models."""
    if not settings.keyframes:  # no keyframes: the keyframe model cannot change a pixel
        models = {k: v for k, v in models.items() if k != "keyframer"}
    return content_key({"v": LAYOUT_VERSION, "a": a, "b": b, "settings": settings.cache_fields(), "models": models})


def painting_key(painting: str, settings: WalkSettings, models: dict[str, Any]) -> str:
    """Names a painting fitted and upscaled on its own (the last painting's piece)."""
    fields = {k: v for k, v in settings.cache_fields().items() if k in ("size", "fit", "output_size", "upscaler")}
    return content_key({"v": LAYOUT_VERSION, "p": painting, "settings": fields, "models": models.get("upscaler")})


def assign_keys(pieces: Sequence[Piece], paintings: Sequence[str], settings: WalkSettings,
                models: dict[str, Any], codec: Codec) -> tuple[list[Piece], list[str]]:
    """Pieces with their content keys, and the walk keys (one per walk).

    `paintings` are the content hashes of the source files in order; `models` the identities
    of the models that render (keyframer, interpolator, upscaler).
    """
    walks = [walk_key(paintings[a], paintings[b], settings, models) for a, b in walk_ends(len(paintings), settings)]
    last = painting_key(paintings[final_painting(len(paintings), settings)], settings, models)
    keyed = []
    for p in pieces:
        base = walks[p.walk] if p.walk is not None else last
        meta = {"base": base, "step": p.step, "start": p.start, "repeat": p.repeat, "times": p.times,
                "fps": settings.fps, "codec": codec.fields()}
        keyed.append(Piece(p.index, p.walk, p.step, p.start, p.repeat, p.times, key=content_key(meta)))
    return keyed, walks


def piece_frames(nodes: np.ndarray, piece: Piece, interpolator: Any) -> np.ndarray:
    """The distinct frames of a piece at the walk size: its start node, then interpolated frames."""
    parts = []
    if piece.start:
        parts.append(nodes[piece.step][None])
    if piece.times:
        a, b = nodes[piece.step], nodes[piece.step + 1]
        parts.append(np.asarray(interpolator.between(a, b, list(piece.times)), np.uint8))
    return np.ascontiguousarray(np.concatenate(parts))


def chunk_path(key: str) -> str:
    """Store path of a piece's chunk."""
    return f"chunks/{key[:2]}/{key}.mp4"


def walk_row_path(key: str) -> str:
    """Store path of a walk's node row (A, K_1..K_m, B as one PNG strip): previews, contact sheet."""
    return f"walks/{key[:2]}/{key}.png"
