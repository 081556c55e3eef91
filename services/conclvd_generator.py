"""The ConCLVD deployment: one window of a scroll per call (the job's coordinator samples), and decoding.

SD 1.5 + the ConCLVD motion module. The coordinator is `services/scroll.py`; the sampling math is
`inkwalk.conclvd.scroll`.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import ray
from ray import serve

from inkwalk.store import Store
from services.deployments import DEFAULT_OPTIONS, StageTimer, _node_id


# Two windows per replica: one computing, the next already waiting inside the replica, so a replica
# never idles between windows while the router looks for a free slot; the others wait at the handle,
# so a step's windows spread evenly. A waiting window looks again after 10-50 ms (Serve's default backs
# off to 0.5 s, which left a replica idle a third of the time; 5-20 ms cost the caller CPU that the
# replicas then lacked on small machines). docs/benchmarks.md, "Scrolls".
WINDOWS_PER_REPLICA = 2
WINDOW_ROUTING = {"max_ongoing_requests": WINDOWS_PER_REPLICA,
                  "request_router_config": {"initial_backoff_s": 0.01, "max_backoff_s": 0.05}}


@serve.deployment(name="ConCLVDGenerator", **{**DEFAULT_OPTIONS, **WINDOW_ROUTING})
class ConCLVDGenerator:
    """SD 1.5 + ConCLVD motion module, one window of a scroll per call (the job's coordinator samples).

    Every replica encodes a job's prompt schedule itself (cached), so a window request carries only
    its latents, its frame indices and the schedule's text: no embeddings or activations cross.
    Torch runs as many threads as the replica has CPUs (`threads`, default its Ray CPU share, at
    least one), never the host's cores: replicas that share a machine do not fight over them.
    """

    TEXT_CACHE = 4  # jobs whose per-frame embeddings a replica keeps

    def __init__(self, store: str, models_dir: str | None = None, motion_module: str | None = None,
                 device: str | None = None, app: str = "conclvd", threads: int | None = None):
        import torch

        from inkwalk.conclvd import load_conclvd
        from inkwalk.models import fingerprint
        from inkwalk.sr_runtimes import threads_for_share

        share = ray.get_runtime_context().get_assigned_resources().get("CPU") if ray.is_initialized() else None
        torch.set_num_threads(threads or threads_for_share(share))
        self.store = Store(store)
        self.model = load_conclvd(models_dir=models_dir, motion_module=motion_module, device=device)
        self.identity = {"sd15": fingerprint("sd15-unet", models_dir),
                         "motion_module": str(motion_module or "")}
        self.app = app
        self.lock = threading.Lock()
        self.texts: dict[str, tuple] = {}
        try:
            self.replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # constructed outside Serve
            self.replica = "local"

    def prepare(self, prompt: str, settings: dict) -> dict:
        """Check a job's validated settings (`ConCLVDSettingsModel.model_dump()`) against this model
        (window length, frame size) before any sampling; the latent size and channels the coordinator needs."""
        from inkwalk.conclvd.scroll_video import scroll_request

        request = scroll_request(self.model, prompt, with_text=False, **settings)
        return {"latent_size": list(request.latent_size), "channels": request.channels}

    def predict(self, latents, frames: list[int], text: dict, timestep, guidance: float) -> tuple:
        """The guided noise prediction of one window (`inkwalk.conclvd.scroll.predict_window`), and who
        made it: this replica's id, node, torch threads and seconds of model call."""
        import torch

        from inkwalk.conclvd.scroll import Window, predict_window, window_embeds

        embeds, negative = self._text(text)
        window = Window(list(frames), latents, window_embeds(embeds, negative, frames))
        with self.lock, StageTimer(self.app, "window"):
            t0 = time.perf_counter()
            noise = predict_window(self.model.unet, window, timestep, float(guidance))
            seconds = time.perf_counter() - t0
        return noise, {"replica": self.replica, "node": _node_id(), "threads": torch.get_num_threads(),
                       "seconds": seconds}

    def decode(self, latents) -> np.ndarray:
        """uint8 frames `T×H×W×3` of a slice of scaled latents `1×4×T×h×w`."""
        from inkwalk.conclvd.scroll import decode_slices

        with self.lock, StageTimer(self.app, "decode"):
            return np.concatenate(list(decode_slices(self.model.vae, latents, latents.shape[2])))

    def _text(self, text: dict) -> tuple:
        """Per-frame and negative embeddings of a job's text (`scroll_text`'s keywords), cached."""
        import json

        from inkwalk.conclvd.scroll_video import scroll_text

        key = json.dumps(text, sort_keys=True)
        if key not in self.texts:
            with self.lock:
                value = scroll_text(self.model, **text)
            while len(self.texts) >= self.TEXT_CACHE:
                self.texts.pop(next(iter(self.texts)))
            self.texts[key] = value
        return self.texts[key]

    def describe(self) -> dict:
        return {"conclvd": self.identity}

    def check_health(self) -> None:
        if self.model is None:
            raise RuntimeError("ConCLVD model is not loaded")
