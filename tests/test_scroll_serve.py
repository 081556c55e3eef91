"""A scroll's windows on ConCLVDGenerator replicas (the test session's local Ray): the same latents as in
process, bit for bit; a lost replica's windows retried; the end-to-end job (chunks, status, previews)."""

from __future__ import annotations

import asyncio

import pytest
import torch

from inkwalk.conclvd.pipeline import conclvd_scheduler
from inkwalk.conclvd.scroll import LocalWindowRunner, ScrollRequest, sample_scroll
from inkwalk.conclvd.scroll_video import scroll_request

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = dict(negative_prompt="blurry", frames=10, steps=2, guidance=8.0, size=(96, 64), window=4, overlap=1,
                loop=True, prompts={"5": "a river in autumn"})


@pytest.fixture(scope="module")
def generators(ray_session, tiny_models, tmp_path_factory):
    from ray import serve

    from services.conclvd_generator import ConCLVDGenerator

    app = ConCLVDGenerator.options(num_replicas=2, ray_actor_options={"num_cpus": 0.25}).bind(
        store=str(tmp_path_factory.mktemp("scroll-store")), models_dir=str(tiny_models))
    handle = serve.run(app, name="scroll-test", route_prefix=None)
    yield handle
    serve.shutdown()  # Serve was started here with default HTTP options: later modules start their own


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
