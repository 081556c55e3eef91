"""Render one collection on a 3-node `ray.cluster_utils.Cluster` and in one process; print JSON.

Run by tests/test_multinode.py in its own process (a Cluster cannot share a process with the
test session's Ray). Worker nodes offer the resources the deployments ask for, one replica's
worth each, so the Interpolator, Upscaler and Encoder have one replica on each worker node.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import yaml


def main(work: Path) -> dict:
    import numpy as np
    from ray.cluster_utils import Cluster

    from inkwalk.local_render import render_collection_in_process as in_process
    from inkwalk.paintings import collection
    from inkwalk.video import read_frames, save_image
    from inkwalk.walk_settings import WalkSettings
    from services.collection import DEFAULT_CONFIG, render_collection_on_ray

    folder = work / "paintings"
    for i, p in enumerate(collection(4, size=(96, 64), seed=5)):
        save_image(folder / f"{i}.png", p)
    one = {"num_replicas": 2, "max_ongoing_requests": 4}
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    app = next(a for a in config["applications"] if a["name"] == "artwalks")
    placement = {"Interpolator": "interpolation", "Upscaler": "upscale", "Encoder": "encode"}
    for d in app["deployments"]:
        d.pop("autoscaling_config", None)
        d.pop("num_replicas", None)
        if d["name"] in placement:
            d.update(one, ray_actor_options={"num_cpus": 0.1, "resources": {placement[d["name"]]: 1}})
        else:
            d.update(num_replicas=1, ray_actor_options={"num_cpus": 0.1, "resources": {"ingress": 1}})
    (work / "config.yaml").write_text(yaml.safe_dump(config))

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"ingress": 10}, "object_store_memory": 300_000_000,
        "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1, object_store_memory=300_000_000,
                                resources={"interpolation": 1, "upscale": 1, "encode": 1}) for _ in range(2)]
    cluster.wait_for_nodes()
    ws = WalkSettings(preset="offline", size=(64, 64), frames=6, hold=0.25, fps=8, upscale="x2",
                                  upscaler="lanczos")
    try:
        summary = render_collection_on_ray(folder, work / "cluster.mp4", ws, address=cluster.address,
                                           store=str(work / "store"), config=work / "config.yaml",
                                           render={"inflight": 6})
    finally:
        cluster.shutdown()
    local = in_process(sorted(folder.iterdir()), work / "local.mp4", ws, cache_dir=work / "local-store",
                       sheet=False)
    a, b = read_frames(work / "cluster.mp4"), read_frames(work / "local.mp4")
    return {"frames": summary.frames, "local_frames": local.frames, "nodes": sorted(summary.nodes),
            "worker_nodes": [w.node_id for w in workers], "chunks": summary.chunks_rendered,
            "identical": bool(a.shape == b.shape and np.array_equal(a, b))}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="inkwalk-multinode-") as tmp:
        print("RESULT " + json.dumps(main(Path(tmp))), flush=True)
    sys.exit(0)
