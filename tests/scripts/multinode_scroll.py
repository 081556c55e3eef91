"""Sample one scroll on a `ray.cluster_utils.Cluster` (a head and a ConCLVDGenerator replica on each worker
node) and in this process; print JSON: identical latents, and the nodes each step's windows ran on.

Run by tests/test_multinode.py in its own process (a Cluster cannot share a process with the test
session's Ray); `--workers 1|2 --frames N --repeats R` also times it (benchmarks/scroll.py), with
`--window --overlap --size --steps` for windows of the size a user runs. Timed runs also report how
each step's windows were split over the replicas, the replicas' torch threads and how busy the
replicas were (seconds in the model / (replicas x wall time)).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

SETTINGS = dict(negative_prompt="blurry", steps=2, guidance=8.0, size=(64, 64), window=4, overlap=1,
                prompts={"3": "a river in autumn"})


def main(work: Path, workers: int, frames: int, repeats: int, compare: bool, **sizes) -> dict:
    import ray
    import torch
    from ray import serve
    from ray.cluster_utils import Cluster

    from inkwalk.conclvd import load_conclvd
    from inkwalk.conclvd.pipeline import conclvd_scheduler
    from inkwalk.conclvd.scroll import LocalWindowRunner, ScrollRequest, sample_scroll
    from inkwalk.conclvd.scroll_video import scroll_request
    from inkwalk.tiny_models import make_tiny
    from services.conclvd_generator import ConCLVDGenerator
    from services.render import RenderOptions, _Responses
    from services.scroll import ServeWindowRunner

    torch.set_num_threads(1)
    models = work / "models"
    make_tiny(models)
    settings = dict(SETTINGS, frames=frames, loop=True, **{k: v for k, v in sizes.items() if v is not None})
    model = load_conclvd(models_dir=models)
    local = scroll_request(model, "misty mountains", **settings)
    text = {"prompt": "misty mountains", **{k: settings[k] for k in ("negative_prompt", "frames", "guidance", "loop",
                                                                      "prompts")}}
    remote = ScrollRequest(plan=local.plan, embeds=None, negative=None, latent_size=local.latent_size,
                           steps=local.steps, channels=local.channels)

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 300_000_000,
                                                            "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1, object_store_memory=300_000_000, resources={"conclvd": 1})
             for _ in range(workers)]
    cluster.wait_for_nodes()
    # this driver stands in for the job's coordinator, an ingress replica that prints no one's logs: streaming
    # every replica's per-window log line here would take CPU the replicas share on a small machine
    ray.init(address=cluster.address, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "INKWALK_NO_PROGRESS": "1"}})
    seen: list[dict] = []
    times = []
    try:
        app = ConCLVDGenerator.options(num_replicas=workers, ray_actor_options={
            "num_cpus": 0.5, "resources": {"conclvd": 1}}).bind(store=str(work / "store"), models_dir=str(models))
        handle = serve.run(app, name="scroll", route_prefix=None)

        async def sample() -> torch.Tensor:
            runner = ServeWindowRunner(handle, text, settings["guidance"], RenderOptions(),
                                       asyncio.get_running_loop(), _Responses(), seen.append)
            return await asyncio.to_thread(sample_scroll, remote, conclvd_scheduler(), runner,
                                           torch.Generator().manual_seed(2))

        latents = asyncio.run(sample())               # also warms every replica (text cache, first calls)
        warm = len(seen)
        for _ in range(repeats):
            t0 = time.perf_counter()
            asyncio.run(sample())
            times.append(time.perf_counter() - t0)
    finally:
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
    per_step = len(local.plan.indices())
    result = {"workers": workers, "frames": frames, "windows": per_step,
              "worker_nodes": sorted(n.node_id for n in nodes),
              "step_nodes": sorted({w["node"] for w in seen[:per_step]}),
              "threads": sorted({w["threads"] for w in seen}),
              "seconds": times, **_spread(seen[warm:], per_step, workers, sum(times))}
    if compare:
        expected = sample_scroll(local, conclvd_scheduler(), LocalWindowRunner(model.unet, 8.0),
                                 torch.Generator().manual_seed(2))
        result["identical"] = bool(torch.equal(latents, expected))
    return result


def _spread(seen: list[dict], per_step: int, workers: int, wall: float) -> dict:
    """How the timed runs' windows were split over the replicas in each step (e.g. {"4/4": 16}: 16 steps
    with 4 windows on each), and the share of the replicas' time spent in the model."""
    steps = [seen[i:i + per_step] for i in range(0, len(seen), per_step)]
    splits = Counter("/".join(str(n) for n in sorted(Counter(w["replica"] for w in step).values(), reverse=True))
                     for step in steps)
    return {"splits": dict(splits), "busy": sum(w["seconds"] for w in seen) / (workers * wall) if wall else None}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=0)
    parser.add_argument("--window", type=int)
    parser.add_argument("--overlap", type=int)
    parser.add_argument("--size", type=int, help="square frames of this side")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--no-compare", dest="compare", action="store_false")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inkwalk-multinode-scroll-") as tmp:
        result = main(Path(tmp), args.workers, args.frames, args.repeats, args.compare, window=args.window,
                      overlap=args.overlap, size=args.size, steps=args.steps)
        print("RESULT " + json.dumps(result), flush=True)
    sys.exit(0)
