"""Render a whole collection into one mp4 in this process: the same pieces and chunks the Ray services render.

`inkwalk render` runs it; the cluster path (services/collection.py) renders the same pieces as
Ray tasks, so both name their chunks alike and share them through the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from inkwalk.artwalks import (WalkModels, default_cache_dir, load_walk_models, model_identities, painting_id,
                              upscale_frames, video_metadata, walk_nodes)
from inkwalk.atomic import atomic_output
from inkwalk.chunks import Codec, encode_chunk_to_store, join_chunks
from inkwalk.png import decode_png, encode_png
from inkwalk.progress import progress
from inkwalk.segments import (assign_keys, chunk_path, final_painting, piece_frames, plan_pieces, walk_ends,
                              walk_row_path)
from inkwalk.sheets import contact_sheet, stack_rows
from inkwalk.store import Store
from inkwalk.video import read_image, save_image
from inkwalk.walk_settings import WalkError, WalkSettings


@dataclass
class CollectionResult:
    """What `render_collection_in_process` made and how much of it came from chunks rendered before."""

    path: Path
    frames: int
    fps: float
    size: tuple[int, int]
    chunks_rendered: int
    chunks_reused: int
    sheet: Path | None = None
    keys: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def render_collection_in_process(paintings: Sequence[np.ndarray | str | Path], out: str | Path, settings: WalkSettings,
                      cache_dir: str | Path | None = None, models_dir: str | Path | None = None,
                      models: WalkModels | None = None, device: str | None = None,
                      sheet: bool = True) -> CollectionResult:
    """Render ``P_1..P_k`` into `out` (mp4) in this process: the same pieces the cluster renders.

    Paintings are arrays or image paths. Each piece (`inkwalk.segments`) is computed, upscaled
    and encoded into a chunk in the store at `cache_dir` (any folder or store URI), unless a
    chunk with its key is already there; the video is the chunks joined by stream copy, so
    every frame is encoded once. Models load once for the whole collection (pass `models` to
    share them across collections). A contact sheet of every walk's ``A, K_1..K_m, B`` goes next
    to the video as ``<out>.sheet.png``.
    """
    if len(paintings) < 2:
        raise WalkError(f"a walk needs at least 2 paintings, got {len(paintings)}")
    ids = [painting_id(p) for p in paintings]
    if models is None:
        models = load_walk_models(settings, models_dir=models_dir, device=device)
    identities = model_identities(settings, models_dir)
    codec = Codec()
    store = Store(cache_dir if cache_dir is not None else default_cache_dir())
    pieces, walks = assign_keys(plan_pieces(len(paintings), settings), ids, settings, identities, codec)
    ends, final = walk_ends(len(paintings), settings), final_painting(len(paintings), settings)
    image = lambda i: paintings[i] if isinstance(paintings[i], np.ndarray) else read_image(paintings[i])  # noqa: E731
    rendered = 0
    nodes, nodes_of = None, object()
    with progress(total=len(pieces), desc="pieces", unit="piece") as bar:
        for piece in pieces:
            if not store.exists(chunk_path(piece.key)):
                owner = piece.walk if piece.walk is not None else "last"
                if nodes_of != owner:  # the nodes of one walk at a time: memory stays flat
                    nodes = (walk_nodes(image(ends[piece.walk][0]), image(ends[piece.walk][1]), settings,
                                        models.keyframer)
                             if piece.walk is not None else walk_nodes(image(final), None, settings))
                    nodes_of = owner
                    if piece.walk is not None and not store.exists(walk_row_path(walks[piece.walk])):
                        store.put_bytes(walk_row_path(walks[piece.walk]), encode_png(contact_sheet([nodes])))
                frames = upscale_frames(piece_frames(nodes, piece, models.interpolator), settings, models.upscaler)
                encode_chunk_to_store(frames, store, chunk_path(piece.key), settings.fps, piece.repeat, codec)
                rendered += 1
            bar.update(1)
    out = Path(out)
    with atomic_output(out) as tmp:
        frames = join_chunks(store, [chunk_path(p.key) for p in pieces], tmp,
                             video_metadata(settings, ids, identities, _names(paintings)))
    sheet_path = None
    if sheet:
        rows = [_walk_row(store, key, image(a), image(b), settings, models) for (a, b), key in zip(ends, walks)]
        sheet_path = save_image(out.with_name(out.stem + ".sheet.png"), stack_rows(rows))
    return CollectionResult(out, frames, settings.fps, settings.output_size, chunks_rendered=rendered,
                            chunks_reused=len(pieces) - rendered, sheet=sheet_path, keys=[p.key for p in pieces])


def _walk_row(store, key: str, a: np.ndarray, b: np.ndarray, settings: WalkSettings, models: WalkModels) -> np.ndarray:
    """A walk's contact-sheet row from the store, or made now (when every chunk was reused)."""
    data = store.get_bytes(walk_row_path(key))
    if data is None:
        row = contact_sheet([walk_nodes(a, b, settings, models.keyframer)])
        store.put_bytes(walk_row_path(key), encode_png(row))
        return row
    return decode_png(data)


def _names(paintings: Sequence[np.ndarray | str | Path]) -> list[str]:
    """The paintings' file names, for the video's metadata (arrays have none: an empty list)."""
    if any(isinstance(p, np.ndarray) for p in paintings):
        return []
    return [Path(p).name for p in paintings]
