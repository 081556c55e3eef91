"""ConCLVD (papers/002): frozen SD 1.5 + Versatile/Sparse-Causal motion module + noise adapter
trained with a contrastive loss over per-frame predicted noise; a diffusers pipeline (DDIM by
default) + SOFP text-to-video.

Heavy imports are lazy so `import inkwalk.conclvd` stays cheap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "ConCLVD": "inkwalk.conclvd.model",
    "ConCLVDConfig": "inkwalk.conclvd.model",
    "load_conclvd": "inkwalk.conclvd.model",
    "training_step": "inkwalk.conclvd.training",
    "generate_video": "inkwalk.conclvd.scroll_video",
    "render_video": "inkwalk.conclvd.scroll_video",
    "ConCLVDPipeline": "inkwalk.conclvd.pipeline",
    "conclvd_scheduler": "inkwalk.conclvd.pipeline",
    "contrastive_loss": "inkwalk.conclvd.loss",
    "conclvd_loss": "inkwalk.conclvd.loss",
    "NoiseAdapter": "inkwalk.conclvd.noise_adapter",
    "ConCLVDMotionModule": "inkwalk.conclvd.motion_module",
    "MotionInitError": "inkwalk.conclvd.unet",
    "init_from_animatediff": "inkwalk.conclvd.unet",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'inkwalk.conclvd' has no attribute {name!r}")
