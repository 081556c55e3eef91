"""A scroll's windows on ConCLVDGenerator replicas (the test session's local Ray): the same latents as in
process, bit for bit; a lost window retried; the whole Serve path (windows, slices decoded, SOFP on the
video's last frame, chunks) = the in-process video, also when a replica is killed while it samples."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from inkwalk.conclvd.pipeline import conclvd_scheduler
from inkwalk.conclvd.scroll import LocalWindowRunner, ScrollRequest, sample_scroll
from inkwalk.conclvd.scroll_video import scroll_request

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = dict(negative_prompt="blurry", frames=10, steps=2, guidance=8.0, size=(96, 64), window=4, overlap=1,
                loop=True, prompts={"5": "a river in autumn"})


JOB = dict(SETTINGS, seed=9, prompt_interpolation="linear")  # a ConCLVD job's settings, as the ingress passes them
SCROLL_APP = "scroll-test"


@pytest.fixture(scope="module")
def scroll_store(tmp_path_factory):
    return tmp_path_factory.mktemp("scroll-store")


@pytest.fixture(scope="module")
def generators(ray_session, tiny_models, scroll_store):
    from ray import serve

    from services.conclvd_generator import ConCLVDGenerator

    app = ConCLVDGenerator.options(num_replicas=2, ray_actor_options={"num_cpus": 0.25}).bind(
        store=str(scroll_store), models_dir=str(tiny_models))
    handle = serve.run(app, name=SCROLL_APP, route_prefix=None)
    yield handle
    serve.shutdown()  # Serve was started here with default HTTP options: later modules start their own


@pytest.fixture(scope="module")
def scroll_handles(generators, tiny_models):
    """The ConCLVD app's stages: the generators, an SOFP Interpolator (DIS flow, as in process) and an
    encoder that keeps the frames it is sent (H.264 output depends on the encoding process's threads)."""
    from ray import serve

    from services.deployments import Interpolator
    from services.render import Handles

    interpolator = serve.run(Interpolator.options(ray_actor_options={"num_cpus": 0.25}).bind(
        method="sofp", flow="dis", app="conclvd"), name="scroll-test-sofp", route_prefix=None)
    return Handles(generator=generators, interpolator=interpolator, encoder=_KeptFrames())


@pytest.fixture(scope="module")
def in_process_video(conclvd_tiny):
    """The frames of the in-process path (`inkwalk t2v`: windows, slices, SOFP by DIS) for JOB."""
    from inkwalk.conclvd.scroll_video import generate_video

    return generate_video(conclvd_tiny, "misty mountains", sofp=True, flow="dis", **JOB)


class _KeptFrames:
    """An Encoder handle that keeps each chunk's frames (the `doubled` response it is handed) in memory."""

    def __init__(self):
        self.chunks: dict[str, np.ndarray] = {}
        self.encode, self.join = _Method(self._encode), _Method(self._join)

    async def _encode(self, frames, chunk: str, *_) -> dict:
        self.chunks[chunk] = await frames
        return {"chunk": chunk, "frames": len(self.chunks[chunk]), "node": "test"}

    async def _join(self, chunks: list, video: str, metadata: dict) -> int:
        self.video = np.concatenate([self.chunks.pop(c) for c in chunks])
        return len(self.video)


class _Method:
    def __init__(self, fn):
        self.fn = fn

    def remote(self, *args):
        return asyncio.ensure_future(self.fn(*args))


def _serve_video(handles, store, key: str, on_windows=lambda windows: None, job: dict = JOB) -> tuple:
    """The frames of `job` rendered through the Serve stages (`render_scroll`, the ConCLVD app's path), and
    its last `windows` status."""
    from inkwalk.store import Store
    from services.render import RenderOptions
    from services.scroll import render_scroll

    status: dict = {}

    def windows(counts: dict) -> None:
        status.update(counts)
        on_windows(counts)

    frames = asyncio.run(render_scroll(handles, Store(store), "misty mountains", job, key, f"{key}.mp4",
                                       f"{key}.png", 8.0, {}, RenderOptions(backoff_s=0.1), on_windows=windows))
    assert frames == len(handles.encoder.video)
    return handles.encoder.video, status


def _serve_latents(handle, request: ScrollRequest, text: dict, seen: list) -> torch.Tensor:
    from services.render import RenderOptions, _Responses
    from services.scroll import ServeWindowRunner

    async def main() -> torch.Tensor:
        runner = ServeWindowRunner(handle, text, 8.0, RenderOptions(backoff_s=0.1), asyncio.get_running_loop(),
                                   _Responses(), seen.append)
        return await asyncio.to_thread(sample_scroll, request, conclvd_scheduler(), runner,
                                       torch.Generator().manual_seed(9))

    return asyncio.run(main())


@pytest.mark.ray
def test_serve_windows_equal_in_process_bit_for_bit(generators, conclvd_tiny):
    local = scroll_request(conclvd_tiny, "misty mountains", **SETTINGS)
    expected = sample_scroll(local, conclvd_scheduler(), LocalWindowRunner(conclvd_tiny.unet, 8.0),
                             torch.Generator().manual_seed(9))
    remote = ScrollRequest(plan=local.plan, embeds=None, negative=None, latent_size=local.latent_size,
                           steps=local.steps, channels=local.channels)
    text = {"prompt": "misty mountains", **{k: SETTINGS[k] for k in ("negative_prompt", "frames", "guidance", "loop",
                                                                      "prompts")}}
    seen: list = []
    latents = _serve_latents(generators, remote, text, seen)
    assert torch.equal(latents, expected)
    assert len(seen) == len(local.plan.indices()) * 2                        # every window of both steps
    assert len({who["replica"] for who in seen}) == 2                        # spread over both replicas


class _FlakyGenerator:
    """A generator handle whose first call for some windows fails as a lost replica's would."""

    def __init__(self, model, fail_first: set[int]):
        import threading

        from services.conclvd_generator import ConCLVDGenerator

        cls = ConCLVDGenerator.func_or_class
        self.replica = cls.__new__(cls)                      # the deployment's own methods, on the test's model
        self.replica.model, self.replica.texts, self.replica.app = model, {}, "test"
        self.replica.lock, self.replica.replica = threading.Lock(), "flaky"
        self.fail_first, self.calls = set(fail_first), []
        self.predict = self

    def remote(self, *args):
        self.calls.append(args[1][0])

        async def answer():
            if args[1][0] in self.fail_first:
                self.fail_first.discard(args[1][0])
                raise RuntimeError("replica died")
            return await asyncio.to_thread(self.replica.predict, *args)

        return asyncio.ensure_future(answer())


def test_a_lost_window_is_retried_for_that_step(conclvd_tiny, monkeypatch):
    import services.conclvd_generator as conclvd_generator

    monkeypatch.setattr(conclvd_generator, "_node_id", lambda: "node")
    local = scroll_request(conclvd_tiny, "misty mountains", **SETTINGS)
    expected = sample_scroll(local, conclvd_scheduler(), LocalWindowRunner(conclvd_tiny.unet, 8.0),
                             torch.Generator().manual_seed(9))
    flaky = _FlakyGenerator(conclvd_tiny, fail_first={3, 9})
    remote = ScrollRequest(plan=local.plan, embeds=None, negative=None, latent_size=local.latent_size,
                           steps=local.steps, channels=local.channels)
    text = {"prompt": "misty mountains", **{k: SETTINGS[k] for k in ("negative_prompt", "frames", "guidance", "loop",
                                                                      "prompts")}}
    assert torch.equal(_serve_latents(flaky, remote, text, []), expected)
    windows = len(local.plan.indices())
    assert len(flaky.calls) == 2 * windows + 2                 # two windows sent twice in step one


@pytest.mark.ray
def test_the_serve_coordinator_samples_with_the_jobs_weighting_and_noise(generators, conclvd_tiny, tmp_path):
    """The Serve coordinator's own plan and request (services/scroll.py) with flat weighting and random noise:
    the same latents as `inkwalk t2v` samples in process, and not the defaults' latents."""
    from inkwalk.conclvd.scroll_video import scroll_latents
    from inkwalk.limits import Limits
    from inkwalk.settings_schemas import parse_conclvd_settings
    from inkwalk.store import Store
    from services.render import Handles, RenderOptions, _Responses
    from services.scroll import _sample

    def job(**changed) -> dict:
        user = {**SETTINGS, "size": "96x64", "seed": 9, **changed}
        return parse_conclvd_settings(user, {}, Limits()).model_dump()

    settings = job(weighting="flat", noise="random")
    expected = scroll_latents(conclvd_tiny, "misty mountains", **settings)
    default = scroll_latents(conclvd_tiny, "misty mountains", **job())
    for one in ({"weighting": "flat"}, {"noise": "random"}):  # each setting alone changes the video
        assert not torch.equal(scroll_latents(conclvd_tiny, "misty mountains", **job(**one)), default)

    latents = asyncio.run(_sample(Handles(generator=generators), Store(tmp_path), "misty mountains", settings,
                                  "previews/p.png", RenderOptions(backoff_s=0.1), _Responses(),
                                  lambda stage, progress: None, lambda windows: None))
    assert torch.equal(latents, expected)


@pytest.mark.ray
def test_serve_scroll_frames_equal_the_in_process_ones(scroll_handles, scroll_store, in_process_video):
    """Windows, slices, SOFP and chunks on Serve give the in-process video exactly: every slice's SOFP
    projects on the video's last frame, as `video_frames` does, not on the slice's own last frame."""
    frames, status = _serve_video(scroll_handles, scroll_store, "same-as-in-process")
    assert frames.shape == in_process_video.shape == (2 * SETTINGS["frames"], 64, 96, 3)  # a loop: 2N frames
    assert np.array_equal(frames, in_process_video)
    assert status["done"] == status["total"] and status["retried"] == 0


@pytest.mark.ray
def test_a_replica_killed_while_a_scroll_samples_fails_no_window(scroll_handles, scroll_store, conclvd_tiny):
    """`ray.kill` of a ConCLVDGenerator replica while it runs a window: the window is sent again, the
    video is still exactly the in-process one, and the job status counts the retry. Frames of 256x192
    make a window take ~0.5 s, so a kill 0.15 s into a step finds both replicas busy. Last in the
    module: Serve replaces the killed replica in the background."""
    import threading

    import ray

    from inkwalk.conclvd.scroll_video import generate_video

    job = dict(JOB, size=(256, 192), steps=3)
    per_step = 4                                                   # 10 looped frames, windows of 4 every 3
    killed: list[dict] = []

    def kill(replica: str) -> None:
        ray.kill(ray.get_actor(f"SERVE_REPLICA::{SCROLL_APP}#ConCLVDGenerator#{replica}", namespace="serve"),
                 no_restart=True)

    def kill_in_the_next_step(windows: dict) -> None:  # on the event loop, as windows come back
        if not killed and windows["done"] == per_step:           # step 1 done: step 2's windows go out now
            killed.append(dict(windows))
            threading.Timer(0.15, kill, [windows["replicas"][0]]).start()

    frames, status = _serve_video(scroll_handles, scroll_store, "killed-replica", kill_in_the_next_step, job)
    assert killed and status["retried"] >= 1, status                   # the lost window was sent again
    assert status["done"] == status["total"] == per_step * job["steps"], status
    assert np.array_equal(frames, generate_video(conclvd_tiny, "misty mountains", sofp=True, flow="dis", **job))


def test_a_steps_windows_wait_in_the_coordinator_beyond_windows_inflight():
    """More windows than `windows_inflight` never flood the generator's queue (a full Serve queue
    refuses calls, each refusal costing a back-off): the rest wait for a free slot."""
    from services.render import RenderOptions, _Responses
    from services.scroll import ServeWindowRunner
    from inkwalk.conclvd.scroll import Window

    class Counting:
        def __init__(self):
            self.now = self.most = 0
            self.predict = self

        def remote(self, latents, frames, *_):
            async def answer():
                self.now += 1
                self.most = max(self.most, self.now)
                await asyncio.sleep(0.01)
                self.now -= 1
                return torch.zeros_like(latents), {"replica": "r", "node": "n"}
            return asyncio.ensure_future(answer())

    handle = Counting()
    windows = [Window([i], torch.full((1, 4, 1, 2, 2), float(i)), None) for i in range(20)]

    async def main() -> list[torch.Tensor]:
        runner = ServeWindowRunner(handle, {}, 8.0, RenderOptions(windows_inflight=3), asyncio.get_running_loop(),
                                   _Responses())
        return await asyncio.to_thread(runner, windows, torch.tensor(1))

    out = asyncio.run(main())
    assert len(out) == 20 and handle.most == 3


def test_a_step_keeps_as_many_windows_in_flight_as_the_running_replicas_take(monkeypatch):
    from types import SimpleNamespace

    from ray import serve

    from services.render import RenderOptions, _Responses
    from services.scroll import ServeWindowRunner

    status = SimpleNamespace(applications={"conclvd": SimpleNamespace(deployments={
        "ConCLVDGenerator": SimpleNamespace(replica_states={"RUNNING": 3, "STARTING": 1})})})
    monkeypatch.setattr(serve, "status", lambda: status)
    handle = SimpleNamespace(app_name="conclvd", deployment_name="ConCLVDGenerator")

    def runner(**opts):
        return ServeWindowRunner(handle, {}, 8.0, RenderOptions(**opts), None, _Responses())

    assert runner().inflight() == 6                          # two per running replica
    assert runner(windows_inflight=4).inflight() == 4        # never past the configured bound
    monkeypatch.setattr(serve, "status", lambda: (_ for _ in ()).throw(RuntimeError("controller gone")))
    assert runner(windows_inflight=5).inflight() == 5        # replicas unknown: the bound


def test_a_scroll_whose_chunks_are_all_stored_is_joined_not_sampled_again(tmp_path):
    """A re-submitted scroll (same key) finds every slice's chunk in the store: no window is sampled, no
    slice decoded; only the join runs. One chunk missing: it is sampled."""
    from inkwalk.store import Store
    from services.render import Handles, RenderError, RenderOptions
    from services.scroll import render_scroll, scroll_chunks

    class Refuses:
        def __getattr__(self, name):
            raise AssertionError(f"{name} called: the scroll was sampled again")

    joined: list = []
    encoder = _KeptFrames()
    encoder.join = _Method(lambda chunks, video, metadata: _joined(joined, chunks))
    store = Store(tmp_path)
    chunks = scroll_chunks("k" * 64, JOB["frames"], JOB["window"])
    assert len(chunks) == 3  # 10 latent frames, slices of 4
    for chunk in chunks:
        store.put_bytes(chunk, b"an encoded chunk")
    handles = Handles(generator=Refuses(), interpolator=Refuses(), encoder=encoder)

    def run() -> int:
        return asyncio.run(render_scroll(handles, store, "misty mountains", JOB, "k" * 64, "k.mp4", "k.png", 8.0, {},
                                         RenderOptions(backoff_s=0.1)))

    assert run() == 42 and joined == [chunks]
    store.delete(chunks[1])
    with pytest.raises(RenderError, match="prepare called: the scroll was sampled again"):
        run()


async def _joined(joined: list, chunks: list) -> int:
    joined.append(list(chunks))
    return 42
