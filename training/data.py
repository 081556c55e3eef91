"""Batches for `inkwalk.conclvd.training_step`: a fixed synthetic batch, or clips from Parquet shards.

The shard reader yields `(epoch, index, batch)` so the loop can checkpoint its data position
and, on resume, skip the batches of the current epoch it has already trained on.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

FRAME_COLUMNS = ["caption", "frames", "shape"]
LATENT_COLUMNS = ["latents", "latents_shape", "text_embeds", "text_embeds_shape"]


def columns_for(kind: str) -> list[str]:
    """The shard columns a run reads: raw frames (+ caption) or the cached latents and embeddings."""
    return FRAME_COLUMNS if kind == "frames" else LATENT_COLUMNS


def synthetic_clips(n: int, frames: int, size: int, seed: int) -> np.ndarray:
    """`n` procedural clips (n×T×H×W×3 uint8): soft diagonal bands drifting a few pixels per frame.

    Real motion between frames, so the temporal layers have something to learn; deterministic in `seed`.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = np.empty((n, frames, size, size, 3), np.uint8)
    for i in range(n):
        freq = rng.uniform(2.0, 5.0, 3)
        phase = rng.uniform(0, 2 * np.pi, 3)
        speed = rng.uniform(0.02, 0.06)
        for t in range(frames):
            for c in range(3):
                band = np.sin(2 * np.pi * freq[c] * (xx + 0.6 * yy - speed * t) + phase[c])
                out[i, t, :, :, c] = np.clip(127.5 + 110.0 * band, 0, 255).astype(np.uint8)
    return out


def synthetic_batch(cfg: dict, model: Any, rank: int, device: torch.device) -> dict[str, Any]:
    """The fixed batch of a synthetic run: frames + captions, or their latents when `encode` is on.

    Encoding once up front keeps the VAE and text encoder out of the per-step cost, like a run
    on shards written with `--encode`.
    """
    syn = cfg["data"]["synthetic"]
    clips = synthetic_clips(int(cfg["data"]["batch_size"]), int(syn["frames"]), int(syn["size"]),
                            seed=int(cfg["train"]["seed"]) * 7919 + rank)
    captions = [str(syn["caption"])] * len(clips)
    frames = torch.from_numpy(clips).to(device)
    if not syn.get("encode", True):
        return {"frames": frames, "caption": captions}
    with torch.no_grad():
        return {"latents": model.encode_frames(frames), "text_embeds": model.encode_text(captions)}


def table_to_batch(table: Any, kind: str, device: torch.device) -> dict[str, Any]:
    """One Arrow batch of shard rows -> one training batch on `device`.

    The tensor columns become ``B×...`` arrays straight from the Arrow buffers
    (`data_pipeline.shards.tensor_column`): no Python object per clip.
    """
    from data_pipeline.shards import tensor_column

    if kind == "frames":
        frames = np.require(tensor_column(table, "frames"), requirements="W")  # torch wants writable memory
        return {"frames": torch.from_numpy(frames).to(device),
                "caption": [str(c) for c in table.column("caption").to_pylist()]}
    latents = tensor_column(table, "latents").astype(np.float32)
    embeds = tensor_column(table, "text_embeds").astype(np.float32)
    return {"latents": torch.from_numpy(latents).to(device), "text_embeds": torch.from_numpy(embeds).to(device)}


def shard_batches(shard: Any, kind: str, batch_size: int, device: torch.device, start_epoch: int = 0,
                  skip: int = 0) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Endless `(epoch, index_in_epoch, batch)` over a Ray Data shard (`get_dataset_shard`).

    Each pass over the shard is one epoch. `skip` batches of `start_epoch` are read and dropped
    (resume at the checkpointed position; Ray Data has no random access into a stream).
    Batches are read as Arrow tables (`iter_torch_batches` cannot carry the caption strings).
    """
    epoch = start_epoch
    while True:
        index = 0
        produced = False
        for table in shard.iter_batches(batch_size=batch_size, batch_format="pyarrow", drop_last=True):
            produced = True
            if epoch == start_epoch and index < skip:
                index += 1
                continue
            yield epoch, index, table_to_batch(table, kind, device)
            index += 1
        if not produced:
            from inkwalk.errors import InkwalkError

            raise InkwalkError(f"a training worker got no batch of {batch_size} clips from the shards: "
                               "use fewer workers, a smaller data.batch_size, or more clips")
        epoch += 1
