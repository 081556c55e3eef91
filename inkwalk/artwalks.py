"""ArtWalks: a video that walks from painting to painting (Pennino et al., MIG 2023).

A walk from A to B is built in stages, each a public function so a Ray task or a Serve
deployment can run it alone (numpy frames in, numpy frames out):

1. `inkwalk.keyframes.render_keyframes`: CLIP image embeddings of A and B from the Kandinsky 2.2 prior, `m`
   mixes ``L_i = (1 - w_i) e_A + w_i e_B`` (weights from `inkwalk.schedules.embedding_weights`),
   decoded by the Kandinsky 2.2 decoder as one batch from one seed (the same starting noise for
   every keyframe, so neighbours stay close and a walk is reproducible);
2. `inkwalk.segments.piece_frames`: `n` frames between each neighbouring pair of ``A, K_1..K_m, B`` at
   eased times (`inkwalk.schedules.frame_times`: our S-curve or the authors' release curve);
3. `upscale_frames`: super-resolution to the output size;
4. the video: pieces of those frames encoded into chunks and joined (`inkwalk.segments`,
   `inkwalk.chunks`); `inkwalk.local_render.render_collection_in_process` runs it all in this
   process, the Ray services run the same pieces on a cluster.

Settings live in `inkwalk.walk_settings`, the keyframer in `inkwalk.keyframes`, contact sheets in
`inkwalk.sheets`; this module loads the models and names them (the identities in chunk keys).

A collection ``P_1..P_k`` is ``k - 1`` walks. Every chunk is named by a hash of its paintings'
bytes and every setting and model that changes its pixels, so rendering a collection again,
or a collection that shares walks, reuses them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from inkwalk.keyframes import KandinskyKeyframer, render_keyframes
from inkwalk.upscale import SR_MODELS
from inkwalk.walk_settings import WalkSettings


@dataclass
class WalkModels:
    """The models a walk needs, loaded once and shared by every walk of a collection."""

    keyframer: KandinskyKeyframer | None
    interpolator: Any
    upscaler: Any | None


def load_walk_models(settings: WalkSettings, models_dir: str | Path | None = None,
                     device: str | None = None) -> WalkModels:
    """Load every model the settings name, up front: a missing weight fails before any work."""
    from inkwalk.interpolate import get_interpolator
    from inkwalk.upscale import get_upscaler

    keyframer = None
    if settings.keyframes > 0 and settings.keyframer == "kandinsky":
        keyframer = KandinskyKeyframer.load(models_dir=models_dir, device=device)
    interpolator = get_interpolator(settings.interpolator, flow=settings.flow, models_dir=models_dir,
                                    device=device)
    upscaler = None
    if settings.upscaler != "none" and settings.output_size != tuple(settings.size):
        upscaler = get_upscaler(settings.upscaler, models_dir=models_dir, device=device,
                                batch_size=settings.batch)
    return WalkModels(keyframer, interpolator, upscaler)


def prepare_painting(image: np.ndarray, settings: WalkSettings) -> np.ndarray:
    """Fit a painting of any size and aspect ratio to the walk size (centre crop or letterbox)."""
    from inkwalk.video import fit_image

    # a writable copy: torch warns on (and must not write to) read-only arrays from PIL
    return np.array(fit_image(image, tuple(settings.size), mode=settings.fit))


def upscale_frames(frames: np.ndarray, settings: WalkSettings, upscaler: Any = None,
                   models_dir: str | Path | None = None) -> np.ndarray:
    """Frames at the walk size -> frames at the output size (unchanged when they match)."""
    target = settings.output_size
    if frames.shape[1:3] == (target[1], target[0]):
        return frames
    if upscaler is None:
        from inkwalk.upscale import get_upscaler

        upscaler = get_upscaler(settings.upscaler, models_dir=models_dir, batch_size=settings.batch)
    return upscaler.upscale(frames, target)


def default_cache_dir() -> Path:
    """INKWALK_CACHE, else the user cache folder (~/.cache/inkwalk/store): chunks of past renders."""
    env = os.environ.get("INKWALK_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "inkwalk" / "store"


def walk_nodes(a: np.ndarray, b: np.ndarray | None, settings: WalkSettings,
               keyframer: KandinskyKeyframer | None = None) -> np.ndarray:
    """A walk's nodes ``A, K_1..K_m, B`` (fitted to the walk size); ``[A]`` alone when `b` is None."""
    fa = prepare_painting(a, settings)
    if b is None:
        return fa[None]
    fb = prepare_painting(b, settings)
    keyframes = render_keyframes(fa, fb, settings, keyframer=keyframer)
    return np.stack([fa, *keyframes, fb])


BACKEND_MODELS = {  # registry models behind each backend (their weights name the chunks they render)
    ("keyframer", "kandinsky"): ("kandinsky-2-2-prior", "kandinsky-2-2-decoder"),
    ("interpolator", "film"): ("film-style",),
    ("flow", "raft"): ("raft-large",), ("flow", "raft-large"): ("raft-large",),
    ("flow", "raft-small"): ("raft-small",),
    **{("upscaler", backend): (model,) for backend, model in SR_MODELS.items()},
}


def stage_identity(kind: str, backend: str, models_dir: str | Path | None = None,
                   flow: str | None = None) -> dict[str, Any]:
    """What names one stage's model in a chunk's key: backend, flow, fingerprints of its weights.

    The in-process renderer and the Serve deployments both name their models with it, so the
    same work gets the same key wherever it runs and chunks are shared.
    """
    from inkwalk.models import fingerprint

    keys = [(kind, backend)] + ([("flow", flow)] if flow else [])
    names = [m for key in keys for m in BACKEND_MODELS.get(key, ())]
    identity: dict[str, Any] = {"backend": backend, "weights": {m: fingerprint(m, models_dir) for m in names}}
    if flow:
        identity["flow"] = flow
    return identity


def model_identities(settings: WalkSettings, models_dir: str | Path | None = None) -> dict[str, Any]:
    """The identities of the three stages a walk with `settings` uses (see `stage_identity`)."""
    flow = settings.flow if settings.interpolator in ("flow-warp", "sofp") else None
    return {"keyframer": stage_identity("keyframer", settings.keyframer, models_dir),
            "interpolator": stage_identity("interpolator", settings.interpolator, models_dir, flow),
            "upscaler": stage_identity("upscaler", settings.upscaler, models_dir)}


def painting_id(painting: np.ndarray | str | Path) -> str:
    """Content hash of a painting: its file's bytes, or an array's shape and pixels."""
    from inkwalk.store import sha256_file

    if isinstance(painting, np.ndarray):
        digest = hashlib.sha256(str(painting.shape).encode())
        digest.update(np.ascontiguousarray(painting).tobytes())
        return "px-" + digest.hexdigest()
    return sha256_file(painting)


def video_metadata(settings: WalkSettings, paintings: Sequence[str], models: dict[str, Any],
                   names: Sequence[str] = ()) -> dict[str, Any]:
    """What goes into the mp4 so a video says how it was made: the settings that did something,
    seed, models, version, the paintings' content hashes (`paintings`) and file `names`."""
    from inkwalk import __version__

    made = {"inkwalk": __version__, "app": "artwalks", "settings": settings.recorded(), "paintings": list(paintings),
            "models": models}
    if names:
        made["painting_names"] = list(names)
    return made
