"""Tiny random checkpoints of every registry model, in the real layout and on-disk formats.

`make_tiny(root)` writes them so `models_dir=root` exercises the real loading code offline in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inkwalk.model_registry import REGISTRY, SD15_FOLDER

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
