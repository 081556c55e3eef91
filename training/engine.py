"""One optimisation step of ConCLVD and the state around it, free of Ray.

The Ray Train loop (training/loop.py) and the plain single-process loop of the benchmark run
this same code; only the placement (DDP, data shards, checkpoint storage) differs.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

TRAINABLE_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "train_state.json"


def loss_kwargs(cfg: dict) -> dict[str, Any]:
    """The `training_step` keyword arguments from the `loss` section."""
    loss = cfg["loss"]
    return {"caption_dropout": loss["caption_dropout"], "lambda_diff": loss["lambda_diff"],
            "lambda_con": loss["lambda_con"], "tau": loss["tau"], "margin": int(loss["margin"])}


def amp_dtype(cfg: dict, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: only on GPU; CPU runs (tests, laptops) stay in fp32."""
    if device.type != "cuda":
        return None
    return {"no": None, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg["model"]["mixed_precision"]]


def build_model(cfg: dict, device: torch.device) -> nn.Module:
    """Load the ConCLVD bundle: frozen SD 1.5 in half precision under mixed precision, trainables in fp32."""
    from inkwalk.conclvd import load_conclvd

    frozen_dtype = amp_dtype(cfg, device)
    structure = {k: cfg["model"][k] for k in ("sparse_causal", "norm_mode")}
    model = load_conclvd(models_dir=cfg["model"]["models_dir"], motion_module=cfg["model"]["motion_module"],
                         device=device, dtype=frozen_dtype, config=structure)
    if cfg["model"]["gradient_checkpointing"]:
        model.unet.enable_gradient_checkpointing()  # diffusers' switch; reaches our motion modules too
    return model


def step_seed(cfg: dict, step: int, rank: int) -> int:
    """Seed of the noise, timesteps and caption dropout of one step on one rank.

    A function of (seed, step, rank) only, so a resumed run draws exactly what an
    uninterrupted one would have drawn.
    """
    if cfg["train"]["repeat_noise"]:
        step = 0
    return (int(cfg["train"]["seed"]) * 1_000_003 + step * 1_009 + rank) % (2**63 - 1)


class Trainer:
    """Optimiser, LR warm-up, grad scaler and the step itself, around a (possibly DDP-wrapped) model.

    DDP wraps the whole ConCLVD bundle, whose `forward` is exactly the trainable part (motion UNet +
    noise adapter); the frozen encoders run outside it under no_grad (`training_step` reaches them
    through `.module`). DDP buckets and all-reduces only parameters that require grad, so the
    frozen SD 1.5 weights cost one broadcast when wrapping and nothing per step.
    """

    def __init__(self, model: nn.Module, cfg: dict, device: torch.device,
                 wrap: Callable[[nn.Module], nn.Module] | None = None):
        self.model = model
        self.cfg = cfg
        self.device = device
        self.params = [p for p in model.trainable_parameters() if p.requires_grad]
        if not self.params:
            raise RuntimeError("the ConCLVD model reports no trainable parameters")
        opt = cfg["optim"]
        self.optimizer = torch.optim.AdamW(self.params, lr=opt["lr"], betas=tuple(opt["betas"]), eps=opt["eps"],
                                           weight_decay=opt["weight_decay"])
        warmup = int(opt["warmup_steps"])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup > 0 else 1.0)
        self.amp = amp_dtype(cfg, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp is torch.float16)
        self.loss_kwargs = loss_kwargs(cfg)
        self.step_model = wrap(model) if wrap else model
        self.step = 0

    def train_step(self, batch: dict[str, Any], rank: int = 0) -> dict[str, float]:
        """One optimiser step on `batch`; returns the float losses and the grad norm."""
        from inkwalk.conclvd import training_step

        generator = torch.Generator(device=self.device).manual_seed(step_seed(self.cfg, self.step, rank))
        self.optimizer.zero_grad(set_to_none=True)
        autocast = (torch.autocast(self.device.type, dtype=self.amp) if self.amp is not None
                    else contextlib.nullcontext())
        with autocast:
            out = training_step(self.step_model, batch, generator=generator, **self.loss_kwargs)
        self.scaler.scale(out["loss"]).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg["optim"]["grad_clip"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        result = {k: float(v.detach()) for k, v in out.items() if k in ("loss", "loss_diff", "loss_con")}
        result["grad_norm"] = float(grad_norm)
        if not math.isfinite(result["loss"]):
            raise FloatingPointError(f"loss is {result['loss']} at step {self.step}: lower optim.lr or use bf16")
        return result

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def save(self, folder: str | Path, extra: dict[str, Any]) -> None:
        """Trainable weights (safetensors, the export format) + optimiser/scheduler/scaler + step."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_trainable(folder / TRAINABLE_FILE)
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict()}, folder / OPTIMIZER_FILE)
        (folder / STATE_FILE).write_text(json.dumps({"step": self.step, **extra}, indent=1))

    def load(self, folder: str | Path) -> dict[str, Any]:
        """Restore everything `save` wrote; returns the saved state (step, data position, ...)."""
        folder = Path(folder)
        self.model.load_trainable(folder / TRAINABLE_FILE)
        states = torch.load(folder / OPTIMIZER_FILE, map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(states["optimizer"])
        self.scheduler.load_state_dict(states["scheduler"])
        self.scaler.load_state_dict(states["scaler"])
        state = json.loads((folder / STATE_FILE).read_text())
        self.step = int(state["step"])
        return state
