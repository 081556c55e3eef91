"""Super-resolution of frames to an exact target size: Real-ESRGAN (spandrel) or Lanczos.

Backends: "realesrgan" (Real-ESRGAN x4plus, RRDBNet: the quality default), "realesrgan-compact"
(realesr-animevideov3, SRVGGNetCompact: ~49x less CPU, for previews) and "lanczos" (no weights).
`inkwalk models fetch` provides the weights (docs/models.md).

Real-ESRGAN always scales by its native factor (4 for both models); a walk asks for an exact size
such as 2560x1440, so frames go through the network and are then resized to the target with
Lanczos. Frames of any size fit in memory because the network runs on overlapping tiles: each
tile is cut with `overlap` extra pixels of context on every side and only its core is kept, so
as long as the overlap covers the network's receptive field the result equals the untiled one
(the compact model's 18 px do; x4plus reaches further and differs slightly near tile borders).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from inkwalk.distinct_frames import distinct_frames
from inkwalk.errors import InkwalkError
from inkwalk.progress import iter_progress
from inkwalk.tiling import run_cropped

# backend -> the registry model it runs (inkwalk.models); "lanczos" needs none
SR_MODELS = {"realesrgan": "realesrgan-x4plus", "realesrgan-compact": "realesr-animevideov3"}
BACKENDS = (*SR_MODELS, "lanczos")
# Tile side per backend: x4plus keeps 4x-resolution 64-channel maps, so 256 bounds its memory; the
# compact net works at input resolution and runs a 320x200 preview frame as one window.
DEFAULT_TILE = {"realesrgan": 256, "realesrgan-compact": 512}
# Context around each tile. x4plus's receptive field is wider than any overlap: measured against the
# untiled result on 96x64 crops with 48-pixel tiles, 16 pixels gave 38-45 dB, 24 gave 44-49 dB.
DEFAULT_OVERLAP = 24
FITS = ("crop", "letterbox", "stretch")


class UpscaleError(InkwalkError):
    """A bad upscaler request (unknown backend, impossible size)."""


class Upscaler(Protocol):
    name: str

    def upscale(self, frames: np.ndarray, size: tuple[int, int]) -> np.ndarray: ...


def _check_frames(frames: np.ndarray) -> tuple[np.ndarray, bool]:
    """Accept one H×W×3 frame or N×H×W×3 frames; return a batch and whether to squeeze it back."""
    frames = np.asarray(frames)
    single = frames.ndim == 3
    if single:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise UpscaleError(f"expected uint8 frames N×H×W×3 or one H×W×3 frame, got {frames.dtype} "
                           f"{frames.shape}")
    return frames, single


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = int(size[0]), int(size[1])
    if w < 1 or h < 1:
        raise UpscaleError(f"target size must be positive WIDTHxHEIGHT, got {w}x{h}")
    return w, h


def resize_lanczos(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize N×H×W×3 uint8 frames to exactly `size=(width, height)` with Lanczos (OpenCV)."""
    w, h = size
    if frames.shape[1:3] == (h, w):
        return frames
    out = np.empty((len(frames), h, w, 3), np.uint8)
    for i, frame in enumerate(frames):
        out[i] = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LANCZOS4)
    return out


class LanczosUpscaler:
    """Weight-free backend: plain Lanczos resampling to the target size."""

    name = "lanczos"

    def describe(self) -> dict:
        return {"backend": self.name}

    def upscale(self, frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Resize frames (N×H×W×3 or H×W×3 uint8) to exactly `size=(width, height)`."""
        batch, single = _check_frames(frames)
        out = resize_lanczos(batch, _check_size(size))
        return out[0] if single else out


class RealESRGANUpscaler:
    """Real-ESRGAN (any spandrel-loadable SR model) run on overlapping tiles, in frame batches."""

    def __init__(self, net, scale: int, device: str = "cpu", tile: int = 256, overlap: int = DEFAULT_OVERLAP,
                 batch_size: int = 4, name: str = "realesrgan", descriptor=None):
        if tile < 16 or overlap < 0:
            raise UpscaleError(f"tile must be >= 16 and overlap >= 0, got tile={tile} overlap={overlap}")
        self.name = name
        self._run = net  # one network call: uint8 N×h×w×3 -> float32 N×(h·s)×(w·s)×3 in [0, 1]
        self.runtime = net.runtime
        self.scale = int(scale)
        self.device = device
        self.descriptor = descriptor  # the spandrel model when PyTorch runs it
        self.tile = int(tile)
        self.overlap = int(overlap)
        self.batch_size = max(1, int(batch_size))
        self.frames_upscaled = 0  # distinct frames run through the network so far

    def describe(self) -> dict:
        """What runs the frames: backend, runtime, threads, device and tiling (the Serve Upscaler reports it)."""
        return {"backend": self.name, "runtime": self.runtime, "threads": self._run.threads, "device": self.device,
                "tile": self.tile, "overlap": self.overlap}

    def upscale_native(self, frames: np.ndarray) -> np.ndarray:
        """Upscale N×H×W×3 uint8 frames by the model's own factor, tiled; returns float32 [0, 1]."""
        def run(tiles: np.ndarray) -> np.ndarray:  # every tile position: `batch_size` frames per call
            return np.concatenate([self._run(np.ascontiguousarray(tiles[b:b + self.batch_size]))
                                   for b in range(0, len(tiles), self.batch_size)])

        return run_cropped(run, frames, self.tile, self.overlap, self.scale,  # minutes for a large image
                           wrap=lambda tiles: iter_progress(tiles, desc="Real-ESRGAN tiles", unit="tile"))

    def upscale(self, frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Upscale frames (N×H×W×3 or H×W×3 uint8) to exactly `size=(width, height)`.

        The network runs at its native factor, then Lanczos brings the result to `size`.
        """
        batch, single = _check_frames(frames)
        w, h = _check_size(size)
        first, inverse = distinct_frames(batch)  # held and repeated frames are upscaled once
        distinct = batch[first]
        out = np.empty((len(distinct), h, w, 3), np.uint8)
        # a few frames at a time: the native-resolution float copy is what takes memory
        for b in range(0, len(distinct), self.batch_size):
            native = self.upscale_native(distinct[b:b + self.batch_size])
            out[b:b + self.batch_size] = resize_lanczos(np.rint(native * 255.0).astype(np.uint8), (w, h))
        self.frames_upscaled += len(distinct)
        out = out if len(first) == len(batch) else out[inverse]
        return out[0] if single else out


def load_realesrgan(models_dir: str | Path | None = None, path: str | Path | None = None,
                    device: str | None = None, tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
                    batch_size: int = 4, backend: str = "realesrgan", runtime: str | None = None,
                    threads: int | None = None) -> RealESRGANUpscaler:
    """Load a Real-ESRGAN backend's weights from the model registry through spandrel.

    `tile` None: the backend's `DEFAULT_TILE`. `runtime` None: the measured choice for the device
    (inkwalk.sr_runtimes); `threads` None: the CPUs this process may use. Missing weights raise the
    registry's ModelNotFoundError, which names `inkwalk models fetch`.
    """
    from inkwalk.models import weights_file
    from inkwalk.sr_runtimes import choose_runtime, cuda_present, export_path, load_net, native_scale, open_export

    file = Path(weights_file(SR_MODELS[backend], path=path, models_dir=models_dir))
    device = device or ("cuda" if cuda_present() else "cpu")
    runtime = choose_runtime(backend, device.split(":")[0], runtime)
    descriptor = None
    if runtime != "torch" and export_path(file).is_file():  # exported before: no torch, no spandrel
        net = open_export(runtime, export_path(file), threads)
    else:
        descriptor = _load_descriptor(file)
        net = load_net(runtime, descriptor, file, device, threads)
    return RealESRGANUpscaler(net, native_scale(net), device=device, tile=tile or DEFAULT_TILE[backend],
                              overlap=overlap, batch_size=batch_size, name=backend, descriptor=descriptor)


def _load_descriptor(file: Path):
    """The spandrel model in `file`, or one clear error."""
    from spandrel import ImageModelDescriptor, ModelLoader

    try:
        descriptor = ModelLoader().load_from_file(str(file))
    except Exception as exc:  # spandrel raises several types for unreadable/unknown files
        raise UpscaleError(f"cannot load super-resolution weights {file}: {exc}") from exc
    if not isinstance(descriptor, ImageModelDescriptor):
        raise UpscaleError(f"{file} is not an image super-resolution model ({type(descriptor).__name__})")
    return descriptor


def get_upscaler(name: str, models_dir: str | Path | None = None, device: str | None = None,
                 tile: int | None = None, overlap: int = DEFAULT_OVERLAP, batch_size: int = 4,
                 runtime: str | None = None, threads: int | None = None) -> Upscaler:
    """An upscaler by backend name (`BACKENDS`): a Real-ESRGAN model via the registry, or Lanczos.

    `runtime`/`threads`: see `load_realesrgan` (Lanczos ignores them).
    """
    if name == "lanczos":
        return LanczosUpscaler()
    if name in SR_MODELS:
        return load_realesrgan(models_dir=models_dir, device=device, tile=tile, overlap=overlap,
                               batch_size=batch_size, backend=name, runtime=runtime, threads=threads)
    raise UpscaleError(f"unknown upscaler {name!r}; choose one of: {', '.join(BACKENDS)}")


def changes_aspect(source: tuple[int, int], size: tuple[int, int], tolerance: float = 0.01) -> bool:
    """Whether resizing `source` (width, height) to `size` distorts it by more than `tolerance` (1%)."""
    return abs((size[0] / size[1]) / (source[0] / source[1]) - 1.0) > tolerance


def upscale_fit(upscaler: Upscaler, frames: np.ndarray, size: tuple[int, int], fit: str = "stretch") -> np.ndarray:
    """Upscale frames (N×H×W×3 or H×W×3 uint8) to exactly `size`, whatever its aspect ratio.

    `stretch` scales each axis on its own; `crop` upscales only the centred part of the frame
    that has the target's aspect ratio (the rest is cut, never computed); `letterbox` upscales
    the whole frame to fit inside `size` and pads with black.
    """
    batch, single = _check_frames(frames)
    w_out, h_out = _check_size(size)
    n, h, w, _ = batch.shape
    if fit == "stretch":
        out = upscaler.upscale(batch, (w_out, h_out))
    elif fit == "crop":
        scale = max(w_out / w, h_out / h)
        cw, ch = min(w, max(1, round(w_out / scale))), min(h, max(1, round(h_out / scale)))
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        out = upscaler.upscale(np.ascontiguousarray(batch[:, y0:y0 + ch, x0:x0 + cw]), (w_out, h_out))
    elif fit == "letterbox":
        scale = min(w_out / w, h_out / h)
        iw, ih = max(1, round(w * scale)), max(1, round(h * scale))
        out = np.zeros((n, h_out, w_out, 3), np.uint8)
        y0, x0 = (h_out - ih) // 2, (w_out - iw) // 2
        out[:, y0:y0 + ih, x0:x0 + iw] = upscaler.upscale(batch, (iw, ih))
    else:
        raise UpscaleError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    return out[0] if single else out


def parse_size(text: str) -> tuple[int, int]:
    """Parse "WIDTHxHEIGHT" (e.g. 2560x1440) as given on the command line."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InkwalkError(f"size must look like WIDTHxHEIGHT (e.g. 1280x720), got {text!r}") from None
    return _check_size((w, h))
