"""The ConCLVD paper's video metrics, with transformers' CLIP (ViT-L/14 from the registry).

- CLIP-text: mean over frames of `100 · cos(text embedding, frame embedding)` (text alignment);
- CLIP-temp: mean cosine of the image embeddings of consecutive frames (temporal consistency).

Both take an mp4 path or a `T×H×W×3` uint8 array.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from inkwalk.errors import InkwalkError
from inkwalk.video import check_clip, read_frames

CLIP_MODEL = "clip-vit-large-patch14"


@lru_cache(maxsize=2)
def _clip(models_dir: str | None, device: str) -> tuple[Any, Any]:
    from transformers import CLIPModel, CLIPProcessor

    from inkwalk.models import load_pretrained

    model = load_pretrained(CLIP_MODEL, CLIPModel, models_dir=models_dir).to(device).eval()
    processor = load_pretrained(CLIP_MODEL, CLIPProcessor, models_dir=models_dir)
    return model, processor


def _device(device: str | None) -> str:
    if device:
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _as_clip(frames: np.ndarray | str | os.PathLike) -> np.ndarray:
    if isinstance(frames, (str, os.PathLike)):
        return read_frames(Path(frames))
    return check_clip(frames)


def _features(output: Any) -> Any:
    """transformers 5 returns a model output from `get_*_features`; 4.x a tensor."""
    return output if hasattr(output, "norm") else output.pooler_output


def image_embeddings(frames: np.ndarray | str | os.PathLike, models_dir: str | Path | None = None,
                     device: str | None = None, batch: int = 16) -> np.ndarray:
    """Unit-norm CLIP image embeddings `T×D` of a clip."""
    import torch

    clip = _as_clip(frames)
    model, processor = _clip(str(models_dir) if models_dir else None, _device(device))
    out = []
    with torch.no_grad():
        for i in range(0, len(clip), batch):
            pixels = processor(images=list(clip[i:i + batch]), return_tensors="pt").pixel_values
            emb = _features(model.get_image_features(pixel_values=pixels.to(model.device, model.dtype)))
            out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu())
    return torch.cat(out).numpy()


def text_embedding(prompt: str, models_dir: str | Path | None = None, device: str | None = None) -> np.ndarray:
    """Unit-norm CLIP text embedding `D` of a prompt (truncated to CLIP's 77 tokens)."""
    import torch

    model, processor = _clip(str(models_dir) if models_dir else None, _device(device))
    tokens = processor(text=[prompt], return_tensors="pt", padding=True, truncation=True)
    with torch.no_grad():
        emb = _features(model.get_text_features(input_ids=tokens.input_ids.to(model.device),
                                                attention_mask=tokens.attention_mask.to(model.device)))
    return torch.nn.functional.normalize(emb.float(), dim=-1)[0].cpu().numpy()


def clip_text_score(frames: np.ndarray | str | os.PathLike, prompt: str, models_dir: str | Path | None = None,
                    device: str | None = None) -> float:
    """CLIP-text: mean over frames of `100 · cos(text, frame)`."""
    images = image_embeddings(frames, models_dir=models_dir, device=device)
    return float(100.0 * (images @ text_embedding(prompt, models_dir=models_dir, device=device)).mean())


def clip_temporal_score(frames: np.ndarray | str | os.PathLike, models_dir: str | Path | None = None,
                        device: str | None = None) -> float:
    """CLIP-temp: mean cosine of consecutive frames' CLIP image embeddings (needs 2+ frames)."""
    images = image_embeddings(frames, models_dir=models_dir, device=device)
    if len(images) < 2:
        raise InkwalkError("CLIP-temp needs a clip of at least 2 frames")
    return float((images[:-1] * images[1:]).sum(axis=1).mean())
