"""A running walk seen from the results store: frames finished so far, and the newest in-between frame.

Pieces finish out of order on the Interpolator replicas; each is a chunk in the store under a
content key the ingress can recompute from the job's record (`assign_keys`). So a job's progress
in frames, and a look at the walk as it is being made, need no bookkeeping in the render path.
"""

import io

import av

from inkwalk.chunks import Codec
from inkwalk.segments import Piece, assign_keys, plan_pieces
from inkwalk.store import Store
from inkwalk.store_layout import chunk_path
from inkwalk.walk_settings import WalkSettings
from services.store import JobRecord


def walk_pieces(record: JobRecord, codec: Codec) -> list[Piece]:
    """The job's pieces with the content keys its render gives them (empty until its models are known)."""
    if not record.models:
        return []
    ws = WalkSettings.model_validate(record.settings)  # the record's JSON, validated at submission
    pieces, _ = assign_keys(plan_pieces(len(record.inputs), ws), [i["sha256"] for i in record.inputs], ws,
                            record.models, codec)
    return pieces


def finished(pieces: list[Piece], store: Store) -> list[Piece]:
    return [p for p, there in zip(pieces, store.exist([chunk_path(p.key) for p in pieces])) if there]


def frame_counts(pieces: list[Piece], store: Store) -> dict[str, int]:
    """``{"done": frames in finished chunks, "total": frames of the walk}``."""
    return {"done": sum(p.frames for p in finished(pieces, store)), "total": sum(p.frames for p in pieces)}


def latest_frame_png(pieces: list[Piece], store: Store) -> bytes | None:
    """The first frame of the finished piece furthest along the walk, as PNG; None before any."""
    done = finished(pieces, store)
    data = store.get_bytes(chunk_path(done[-1].key)) if done else None
    if data is None:
        return None
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0)).to_image()
    out = io.BytesIO()
    frame.save(out, format="PNG")
    return out.getvalue()
