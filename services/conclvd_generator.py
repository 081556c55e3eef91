"""The ConCLVD deployment: SD 1.5 + the ConCLVD motion module turn a prompt into frames, streamed step by step."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, AsyncIterator

import numpy as np
from ray import serve

from inkwalk.errors import InkwalkError
from inkwalk.png import encode_png
from inkwalk.store import Store
from services.deployments import DEFAULT_OPTIONS, StageTimer

if TYPE_CHECKING:
    from inkwalk.settings_schemas import ConCLVDSettingsModel


@serve.deployment(name="ConCLVDGenerator", **DEFAULT_OPTIONS)
class ConCLVDGenerator:
    """SD 1.5 + ConCLVD motion module: text -> N frames (SOFP runs in the Interpolator)."""

    def __init__(self, store: str, models_dir: str | None = None, motion_module: str | None = None,
                 device: str | None = None, app: str = "conclvd"):
        from inkwalk.conclvd import load_conclvd
        from inkwalk.models import fingerprint

        self.store = Store(store)
        self.model = load_conclvd(models_dir=models_dir, motion_module=motion_module, device=device)
        self.identity = {"sd15": fingerprint("sd15-unet", models_dir),
                         "motion_module": str(motion_module or "")}
        self.app = app
        self.lock = threading.Lock()

    async def generate(self, prompt: str, settings: "ConCLVDSettingsModel",
                       preview: str | None = None) -> AsyncIterator[tuple]:
        """Stream ``("progress", step / steps)`` after each denoising step, then ``("clip", [ref])``.

        The clip (N×size×size×3 uint8, before frame interpolation) is put in the object store
        and only its reference travels, so the caller can hand it to the Interpolator without
        receiving the frames. Cancelling the call stops the sampling at the next step.
        `preview` (a store path) receives a contact sheet of the N frames. `settings` were validated
        once where the job was submitted.
        """
        import ray

        from inkwalk.conclvd import generate_video
        from inkwalk.sheets import contact_sheet

        loop = asyncio.get_running_loop()
        steps: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()

        def on_step(i: int, n: int) -> None:
            if cancelled.is_set():
                raise InkwalkError("cancelled")
            loop.call_soon_threadsafe(steps.put_nowait, i / n)

        def run() -> np.ndarray:
            with self.lock, StageTimer(self.app, "generate"):
                return generate_video(self.model, prompt, sofp=False, progress=on_step, **settings.model_dump())

        work = asyncio.ensure_future(asyncio.to_thread(run))
        try:
            while not work.done():
                getter = asyncio.ensure_future(steps.get())
                await asyncio.wait({work, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield "progress", float(getter.result())
                else:
                    getter.cancel()
            clip = np.ascontiguousarray(work.result())
        finally:
            cancelled.set()  # the caller went away or the job was cancelled: stop between steps
        if preview:
            self.store.put_bytes(preview, encode_png(contact_sheet([clip])))
        yield "clip", [ray.put(clip)]

    def describe(self) -> dict:
        return {"conclvd": self.identity}

    def check_health(self) -> None:
        if self.model is None:
            raise RuntimeError("ConCLVD model is not loaded")
