"""ArtWalks: a video that walks from painting to painting (Pennino et al., MIG 2023).

A walk from A to B is built in stages, each a public function so a Ray task or a Serve
deployment can run it alone (numpy frames in, numpy frames out):

1. `render_keyframes`: CLIP image embeddings of A and B from the Kandinsky 2.2 prior, `m`
   mixes ``L_i = (1 - w_i) e_A + w_i e_B`` (weights from `inkwalk.schedules.embedding_weights`),
   decoded by the Kandinsky 2.2 decoder as one batch from one seed (the same starting noise for
   every keyframe, so neighbours stay close and a walk is reproducible);
2. `inkwalk.segments.piece_frames`: `n` frames between each neighbouring pair of ``A, K_1..K_m, B`` at
   eased times (`inkwalk.schedules.frame_times`: our S-curve or the authors' release curve);
3. `upscale_frames`: super-resolution to the output size;
4. the video: pieces of those frames encoded into chunks and joined (`inkwalk.segments`,
   `inkwalk.chunks`); `render_collection` runs it all in this process, the Ray services run
   the same pieces on a cluster.

A collection ``P_1..P_k`` is ``k - 1`` walks. Every chunk is named by a hash of its paintings'
bytes and every setting and model that changes its pixels, so rendering a collection again,
or a collection that shares walks, reuses them.

Frame count of a collection (see docs/artwalks.md):
``(k - 1)(m + 1)(n + 1) + 1 + k * round(hold * fps)``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from inkwalk.errors import InkwalkError
from inkwalk.upscale import BACKENDS as UPSCALE_BACKENDS
from inkwalk.upscale import SR_MODELS
from inkwalk.schedules import EASINGS, KEYFRAME_GRIDS

PRESETS: dict[str, dict[str, Any]] = {
    # Kandinsky 2.2 keyframes + FILM + Real-ESRGAN, as in the paper (needs weights).
    "paper": dict(keyframes=5, frames=24, keyframer="kandinsky", interpolator="film",
                  upscaler="realesrgan", upscale="x2"),
    # No diffusion, flow-warp with OpenCV DIS, Lanczos: runs anywhere with no weights.
    "offline": dict(keyframes=0, frames=24, keyframer="none", interpolator="flow-warp",
                    upscaler="lanczos", upscale="none"),
    # The authors' released pacing (full_pipeline.sh with their own runs' S=5, I=10 s, F=10 s): sinh
    # weights on their keyframe grid, their easing, 10 s (300 frames at 30 fps) per segment, 10 s holds.
    "release": dict(keyframes=5, frames=299, keyframer="kandinsky", interpolator="film", upscaler="realesrgan",
                    upscale="x2", weighting="sinh", keyframe_grid="release", easing="release", fps=30.0,
                    hold=10.0),
}
KEYFRAMERS = ("kandinsky", "none")
INTERPOLATORS = ("film", "flow-warp", "blend")
UPSCALERS = (*UPSCALE_BACKENDS, "none")


class WalkError(InkwalkError):
    """Bad walk settings or inputs (too few paintings, impossible sizes, unknown backends)."""


@dataclass(frozen=True)
class WalkSettings:
    """Everything that decides a walk's frames. `with_preset` fills backend defaults by name."""

    preset: str = "paper"
    keyframes: int = 5              # m: diffusion keyframes between two paintings
    frames: int = 24                # n: interpolated frames between two neighbouring frames
    weighting: str = "logit"        # logit | sinh | linear
    keyframe_grid: str = "interior"  # interior: t = i/(m+1) | release: t = i/m from 0 (the authors' release)
    scale: float = 15.0             # logit scale s
    easing: str = "s-curve"         # s-curve | release (the authors' release curve)
    strength: float = 1.0           # S-curve strength (0 = even spacing)
    hold: float = 0.0               # seconds each painting stays still
    fps: float = 24.0
    size: tuple[int, int] = (720, 720)   # (width, height) of the walk before upscaling
    upscale: str = "x2"             # "none", "xF" (factor) or "WxH" (exact)
    keyframer: str = "kandinsky"
    interpolator: str = "film"
    flow: str = "dis"
    upscaler: str = "realesrgan"
    seed: int = 0
    fit: str = "crop"               # crop | letterbox
    steps: int = 50                 # decoder denoising steps
    guidance: float = 4.0           # decoder classifier-free guidance
    batch: int = 4                  # keyframes / upscaled frames per model call

    @classmethod
    def with_preset(cls, preset: str = "paper", **overrides: Any) -> "WalkSettings":
        """Settings of a preset, with explicit overrides (None means "keep the preset's")."""
        if preset not in PRESETS:
            raise WalkError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
        settings = cls(preset=preset, **values)
        settings.validate()
        return settings

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "WalkSettings":
        """Settings from a JSON-like dict (``preset`` picks the defaults); bad values are WalkErrors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise WalkError(f"unknown ArtWalks setting(s) {unknown}; known: {sorted(known)}")
        values = dict(values)
        if "size" in values:
            size = values["size"]
            try:
                values["size"] = (int(size), int(size)) if isinstance(size, int) else tuple(int(v) for v in size)
            except (TypeError, ValueError):
                raise WalkError(f"size must be [width, height], got {size!r}") from None
            if len(values["size"]) != 2:
                raise WalkError(f"size must be [width, height], got {size!r}")
        try:
            return cls.with_preset(values.pop("preset", "paper"), **values)
        except (TypeError, ValueError) as exc:
            raise WalkError(f"bad ArtWalks settings: {exc}") from None

    def validate(self) -> None:
        """Raise WalkError on a setting no walk can be rendered with."""
        checks = [
            (self.keyframes >= 0, f"keyframes must be >= 0, got {self.keyframes}"),
            (self.frames >= 0, f"frames per segment must be >= 0, got {self.frames}"),
            (self.hold >= 0, f"hold must be >= 0 seconds, got {self.hold}"),
            (self.fps > 0, f"fps must be positive, got {self.fps}"),
            (min(self.size) >= 16, f"size must be at least 16x16, got {self.size[0]}x{self.size[1]}"),
            (self.keyframer in KEYFRAMERS, f"unknown keyframer {self.keyframer!r}; choose one of: "
                                           f"{', '.join(KEYFRAMERS)}"),
            (self.interpolator in INTERPOLATORS, f"unknown interpolator {self.interpolator!r}; choose one "
                                                 f"of: {', '.join(INTERPOLATORS)}"),
            (self.upscaler in UPSCALERS, f"unknown upscaler {self.upscaler!r}; choose one of: "
                                         f"{', '.join(UPSCALERS)}"),
            (self.fit in ("crop", "letterbox"), f"fit must be crop or letterbox, got {self.fit!r}"),
            (self.easing in EASINGS, f"unknown easing {self.easing!r}; choose one of: {', '.join(EASINGS)}"),
            (self.keyframe_grid in KEYFRAME_GRIDS, f"unknown keyframe grid {self.keyframe_grid!r}; choose one of: "
                                                   f"{', '.join(KEYFRAME_GRIDS)}"),
            (self.keyframes == 0 or self.keyframer != "none",
             f"{self.keyframes} keyframes asked for but keyframer is 'none': use --keyframer kandinsky "
             "or --keyframes 0"),
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.batch >= 1, f"batch must be >= 1, got {self.batch}"),
        ]
        for ok, message in checks:
            if not ok:
                raise WalkError(message)
        if self.upscaler == "none" and self.output_size != tuple(self.size):
            raise WalkError(f"upscale {self.upscale!r} needs an upscaler: use --upscaler "
                            f"{' or '.join(UPSCALE_BACKENDS)}, "
                            "or --upscale none")

    @property
    def hold_frames(self) -> int:
        """Extra copies of each painting: ``round(hold * fps)``."""
        return int(round(self.hold * self.fps))

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the video: `size` after the `upscale` rule."""
        from inkwalk.upscale import parse_size

        text = str(self.upscale).strip().lower()
        w, h = self.size
        if text in ("none", "", "x1"):
            return (w, h)
        if text.startswith("x"):
            try:
                factor = float(text[1:])
            except ValueError:
                factor = 0.0
            if factor <= 0:
                raise WalkError(f"upscale factor must look like x2 or x4, got {self.upscale!r}")
            return (int(round(w * factor)), int(round(h * factor)))
        return parse_size(text)

    def cache_fields(self) -> dict[str, Any]:
        """The settings that change a walk's pixels (hold and fps only change the assembly)."""
        d = asdict(self)
        for k in ("preset", "hold", "fps", "batch"):
            d.pop(k)
        d["output_size"] = list(self.output_size)
        if self.keyframes == 0:
            for k in ("weighting", "keyframe_grid", "scale", "keyframer", "seed", "steps", "guidance"):
                d.pop(k)
        if self.interpolator != "flow-warp":
            d.pop("flow")
        return d


def walk_frame_count(paintings: int, settings: WalkSettings) -> int:
    """Frames in the video of a collection of `paintings` paintings (the documented formula)."""
    k, m, n = paintings, settings.keyframes, settings.frames
    return (k - 1) * (m + 1) * (n + 1) + 1 + k * settings.hold_frames


# --------------------------------------------------------------------------- models


def _device_dtype(device: str | None):
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    return dev, dtype


class KandinskyKeyframer:
    """Kandinsky 2.2 prior (its CLIP image encoder only) + decoder, loaded once."""

    def __init__(self, prior, decoder, device):
        self.prior = prior
        self.decoder = decoder
        self.device = device

    @classmethod
    def load(cls, models_dir: str | Path | None = None, device: str | None = None) -> "KandinskyKeyframer":
        """Load both pipelines from the model registry; fp16/bf16 on GPU, fp32 on CPU."""
        from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline

        from inkwalk.models import load_pretrained

        dev, dtype = _device_dtype(device)
        # only the prior's CLIP image encoder (and its image processor) is needed: skip the
        # prior transformer and the text encoder, most of the prior's weights
        prior = load_pretrained("kandinsky-2-2-prior", KandinskyV22PriorPipeline, models_dir=models_dir,
                                dtype=dtype, prior=None, text_encoder=None, tokenizer=None, scheduler=None)
        decoder = load_pretrained("kandinsky-2-2-decoder", KandinskyV22Pipeline, models_dir=models_dir,
                                  dtype=dtype)
        for pipe in (prior, decoder):
            pipe.to(dev)
            pipe.set_progress_bar_config(disable=True)
        return cls(prior, decoder, dev)

    def embed(self, images: Sequence[np.ndarray]):
        """CLIP image embeddings (N×D tensor) of uint8 frames, the prior's own preprocessing."""
        import torch

        enc = self.prior.image_encoder
        pixels = self.prior.image_processor(images=[np.array(i) for i in images], return_tensors="pt").pixel_values
        with torch.inference_mode():
            return enc(pixels.to(self.device, enc.dtype)).image_embeds

    def decode(self, embeds, size: tuple[int, int], seed: int, steps: int, guidance: float,
               batch: int) -> np.ndarray:
        """Keyframes (m×H'×W'×3 uint8) from m image embeddings, all from the same start noise."""
        import torch

        dec = self.decoder
        w, h = size
        negative = self.prior.get_zero_embed(1, device=self.device).to(embeds.dtype)
        out = []
        for start in range(0, len(embeds), batch):
            part = embeds[start:start + batch]
            b = len(part)
            # one generator per image, all with the same seed: every keyframe starts from the
            # same noise and gets the same sampler noise, whatever the batch size
            generators = [torch.Generator("cpu").manual_seed(int(seed)) for _ in range(b)]
            images = dec(image_embeds=part, negative_image_embeds=negative.repeat(b, 1), height=h, width=w,
                         num_inference_steps=steps, guidance_scale=guidance, generator=generators,
                         output_type="np").images
            out.append(np.clip(np.rint(np.asarray(images, np.float32) * 255.0), 0, 255).astype(np.uint8))
        return np.concatenate(out)


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


# --------------------------------------------------------------------------- stages


def prepare_painting(image: np.ndarray, settings: WalkSettings) -> np.ndarray:
    """Fit a painting of any size and aspect ratio to the walk size (centre crop or letterbox)."""
    from inkwalk.video import fit_image

    # a writable copy: torch warns on (and must not write to) read-only arrays from PIL
    return np.array(fit_image(image, tuple(settings.size), mode=settings.fit))


def render_keyframes(a: np.ndarray, b: np.ndarray, settings: WalkSettings,
                     models_dir: str | Path | None = None,
                     keyframer: KandinskyKeyframer | None = None) -> np.ndarray:
    """The m keyframes between paintings a and b (fitted to `settings.size`), m×H×W×3 uint8."""
    from inkwalk.schedules import embedding_weights
    from inkwalk.video import fit_image

    m = settings.keyframes
    w, h = settings.size
    if m == 0:
        return np.zeros((0, h, w, 3), np.uint8)
    if keyframer is None:
        keyframer = KandinskyKeyframer.load(models_dir=models_dir)
    import torch

    e = keyframer.embed([a, b])
    weights = torch.as_tensor(embedding_weights(m, settings.weighting, settings.scale, settings.keyframe_grid),
                              dtype=e.dtype, device=e.device)[:, None]
    mixed = (1 - weights) * e[0:1] + weights * e[1:2]
    frames = keyframer.decode(mixed, (w, h), settings.seed, settings.steps, settings.guidance, settings.batch)
    # the decoder rounds sizes up to its latent grid: bring each keyframe to the walk size
    return np.stack([f if f.shape[:2] == (h, w) else fit_image(f, (w, h), "crop") for f in frames])


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


# --------------------------------------------------------------------------- collection


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


def stack_rows(rows: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """Contact-sheet rows (images of one walk's nodes each) stacked on white: one sheet per video."""
    width = max(r.shape[1] for r in rows)
    sheet = np.full((sum(r.shape[0] for r in rows), width, 3), 255, np.uint8)
    y = 0
    for r in rows:
        sheet[y:y + r.shape[0], :r.shape[1]] = r
        y += r.shape[0]
    return sheet


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


@dataclass
class CollectionResult:
    """What `render_collection` made and how much of it came from chunks rendered before."""

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


def video_metadata(settings: WalkSettings, paintings: Sequence[str], models: dict[str, Any]) -> dict[str, Any]:
    """What goes into the mp4 so a video says how it was made (settings, seed, models, version)."""
    from inkwalk import __version__

    return {"inkwalk": __version__, "app": "artwalks", "settings": asdict(settings), "paintings": list(paintings),
            "models": models}


def render_collection(paintings: Sequence[np.ndarray | str | Path], out: str | Path, settings: WalkSettings,
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
    from inkwalk.chunks import Codec, encode_chunk_to_store, join_chunks
    from inkwalk.progress import progress
    from inkwalk.segments import assign_keys, chunk_path, piece_frames, plan_pieces, walk_row_path
    from inkwalk.store import Store
    from inkwalk.atomic import atomic_output
    from inkwalk.video import read_image, save_image

    settings.validate()
    if len(paintings) < 2:
        raise WalkError(f"a walk needs at least 2 paintings, got {len(paintings)}")
    ids = [painting_id(p) for p in paintings]
    if models is None:
        models = load_walk_models(settings, models_dir=models_dir, device=device)
    identities = model_identities(settings, models_dir)
    codec = Codec()
    store = Store(cache_dir if cache_dir is not None else default_cache_dir())
    pieces, walks = assign_keys(plan_pieces(len(paintings), settings), ids, settings, identities, codec)
    image = lambda i: paintings[i] if isinstance(paintings[i], np.ndarray) else read_image(paintings[i])  # noqa: E731
    rendered = 0
    nodes, nodes_of = None, object()
    with progress(total=len(pieces), desc="pieces", unit="piece") as bar:
        for piece in pieces:
            if not store.exists(chunk_path(piece.key)):
                owner = piece.walk if piece.walk is not None else "last"
                if nodes_of != owner:  # the nodes of one walk at a time: memory stays flat
                    nodes = (walk_nodes(image(piece.walk), image(piece.walk + 1), settings, models.keyframer)
                             if piece.walk is not None else walk_nodes(image(len(paintings) - 1), None, settings))
                    nodes_of = owner
                    if piece.walk is not None and not store.exists(walk_row_path(walks[piece.walk])):
                        store.put_bytes(walk_row_path(walks[piece.walk]), _png(contact_sheet([nodes])))
                frames = upscale_frames(piece_frames(nodes, piece, models.interpolator), settings, models.upscaler)
                encode_chunk_to_store(frames, store, chunk_path(piece.key), settings.fps, piece.repeat, codec)
                rendered += 1
            bar.update(1)
    out = Path(out)
    with atomic_output(out) as tmp:
        frames = join_chunks(store, [chunk_path(p.key) for p in pieces], tmp,
                             video_metadata(settings, ids, identities))
    sheet_path = None
    if sheet:
        rows = [_walk_row(store, key, image(i), image(i + 1), settings, models) for i, key in enumerate(walks)]
        sheet_path = save_image(out.with_name(out.stem + ".sheet.png"), stack_rows(rows))
    return CollectionResult(out, frames, settings.fps, settings.output_size, chunks_rendered=rendered,
                            chunks_reused=len(pieces) - rendered, sheet=sheet_path, keys=[p.key for p in pieces])


def _walk_row(store, key: str, a: np.ndarray, b: np.ndarray, settings: WalkSettings, models: WalkModels) -> np.ndarray:
    """A walk's contact-sheet row from the store, or made now (when every chunk was reused)."""
    from inkwalk.segments import walk_row_path

    data = store.get_bytes(walk_row_path(key))
    if data is None:
        row = contact_sheet([walk_nodes(a, b, settings, models.keyframer)])
        store.put_bytes(walk_row_path(key), _png(row))
        return row
    return _unpng(data)


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _unpng(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")).copy()
