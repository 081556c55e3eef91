"""Random weights of the paper's networks at their real sizes, and the reduced-precision parity check.

Random weights cost the same compute as trained ones, so a GPU run needs no hub download: the
shapes below are those of the public Kandinsky 2.2 prior/decoder configs, FILM "Style" and
Real-ESRGAN x4plus. The keyframer loads only the prior's CLIP ViT-bigG image encoder
(`inkwalk.keyframes`), so the prior transformer and text encoder it never loads are kept small.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from inkwalk.model_registry import REGISTRY

EMBED_DIM = 1280  # CLIP ViT-bigG image embedding == the decoder's encoder_hid_dim


def vision_encoder():
    """CLIP ViT-bigG/14 image tower with projection (Kandinsky 2.2 prior's `image_encoder`)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=1664, intermediate_size=8192, num_hidden_layers=48, num_attention_heads=16,
        projection_dim=EMBED_DIM, image_size=224, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-5))


def decoder_unet():
    """Kandinsky 2.2 decoder UNet (block widths 384..1536, 3 layers per block, image-embedding conditioning)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        in_channels=4, out_channels=8, addition_embed_type="image", block_out_channels=(384, 768, 1152, 1536),
        down_block_types=("ResnetDownsampleBlock2D",) + ("SimpleCrossAttnDownBlock2D",) * 3,
        up_block_types=("SimpleCrossAttnUpBlock2D",) * 3 + ("ResnetUpsampleBlock2D",),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", layers_per_block=3, encoder_hid_dim=EMBED_DIM,
        encoder_hid_dim_type="image_proj", cross_attention_dim=768, attention_head_dim=64,
        resnet_time_scale_shift="scale_shift", class_embed_type=None)


def movq():
    """Kandinsky 2.2 MoVQ image decoder (spatially normalised VQ-GAN, 8x)."""
    from diffusers import VQModel

    return VQModel(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                   block_out_channels=(128, 256, 256, 512), norm_type="spatial", num_vq_embeddings=16384,
                   vq_embed_dim=4, down_block_types=("DownEncoderBlock2D",) * 3 + ("AttnDownEncoderBlock2D",),
                   up_block_types=("AttnUpDecoderBlock2D",) + ("UpDecoderBlock2D",) * 3)


def write_full_size(root: Path, device: str = "cpu") -> None:
    """Overwrite the tiny Kandinsky prior/decoder, FILM and x4plus under `root` (a `make_tiny` folder)
    with full-size random weights; built on `device` (a GPU initialises billions of weights in seconds)."""
    from diffusers import (DDPMScheduler, KandinskyV22Pipeline, KandinskyV22PriorPipeline, PriorTransformer,
                           UnCLIPScheduler)
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from inkwalk.interpolate.film.convert import save_film
    from inkwalk.interpolate.film.net import FilmConfig, FilmNet
    from inkwalk.ncnn_weights import rrdbnet_layout
    from inkwalk.tiny_models import _clip_image_processor, _tiny_tokenizer, _write_sr

    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(0)
        tokenizer = _tiny_tokenizer()
        text = CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=64, projection_dim=EMBED_DIM,
            num_attention_heads=2, num_hidden_layers=1, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
        prior = KandinskyV22PriorPipeline(
            prior=PriorTransformer(num_attention_heads=2, attention_head_dim=32, embedding_dim=EMBED_DIM,
                                   num_layers=1),
            image_encoder=vision_encoder().half(), text_encoder=text, tokenizer=tokenizer,
            scheduler=UnCLIPScheduler(), image_processor=_clip_image_processor())
        prior.save_pretrained(root / REGISTRY["kandinsky-2-2-prior"].local)
        del prior
        scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.00085,
                                  beta_end=0.012, clip_sample=False, steps_offset=1, prediction_type="epsilon")
        KandinskyV22Pipeline(unet=decoder_unet().half(), scheduler=scheduler, movq=movq()).save_pretrained(
            root / REGISTRY["kandinsky-2-2-decoder"].local)
        film = FilmNet(FilmConfig())
        save_film(root / REGISTRY["film-style"].local, {k: v.cpu() for k, v in film.state_dict().items()},
                  FilmConfig())
    _write_sr(root / REGISTRY["realesrgan-x4plus"].local, rrdbnet_layout())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8 images."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def precision_parity(models_dir: Path, device: str, size: tuple[int, int]) -> dict[str, float]:
    """Reduced precision vs float32 on the same weights and inputs, as each model runs on `device`:
    FILM under bf16 autocast (PSNR, dB); x4plus in fp16 as the upscaler runs it on CUDA (bf16 on
    CPU) and the decoder UNet in the keyframer's dtype (relative L2 error of the raw output)."""
    from diffusers import UNet2DConditionModel

    from inkwalk.interpolate.film import interpolate_pair, load_film
    from inkwalk.paintings import collection
    from inkwalk.models import weights_file
    from inkwalk.upscale import SR_MODELS, _load_descriptor

    low = torch.float16 if device.startswith("cuda") else torch.bfloat16
    a, b = collection(2, size)
    film = load_film(models_dir=models_dir, device=device)
    out = {"film_bf16_psnr_db": psnr(interpolate_pair(film, a, b, [0.5]), interpolate_pair(film, a, b, [0.5],
                                                                                           dtype="bf16"))}
    del film
    # relative error of the raw output: random x4plus weights give a nearly flat image, whose
    # rounding to uint8 hides any difference
    model = _load_descriptor(Path(weights_file(SR_MODELS["realesrgan"], models_dir=models_dir))).model
    model = model.to(device).eval()
    x = torch.from_numpy(a).permute(2, 0, 1)[None].float().div(255).to(device)
    with torch.inference_mode():
        reference = model(x)
        low_out = model.to(low)(x.to(low)).float()
    out[f"x4plus_{str(low).split('.')[-1]}_rel_err"] = float((low_out - reference).norm() / reference.norm())
    del model
    unet_dtype = torch.bfloat16 if device.startswith("cpu") or torch.cuda.is_bf16_supported() else torch.float16
    folder = models_dir / REGISTRY["kandinsky-2-2-decoder"].local
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, size[1] // 8, size[0] // 8, generator=g)
    embeds = torch.randn(1, UNet2DConditionModel.load_config(folder, subfolder="unet")["encoder_hid_dim"], generator=g)
    noise = {}
    for dtype in (torch.float32, unet_dtype):
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dtype).to(device).eval()
        with torch.inference_mode():
            noise[dtype] = unet(latents.to(device, dtype), 500, encoder_hidden_states=None,
                                added_cond_kwargs={"image_embeds": embeds.to(device, dtype)}).sample.float()
        del unet
    ref, low_out = noise[torch.float32], noise[unet_dtype]
    out[f"decoder_unet_{str(unet_dtype).split('.')[-1]}_rel_err"] = float((low_out - ref).norm() / ref.norm())
    return out

