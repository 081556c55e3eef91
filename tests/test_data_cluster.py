"""The CLV-HD pipeline on real clusters: a `ray start --head` cluster and a multi-node `cluster_utils.Cluster`.

Slow (cluster starts): `pytest -m slow tests/test_data_cluster.py`.

- The documented command, run from another folder with a *relative* manifest against a
  `ray start --head` cluster (its own temp folder, stopped by its PIDs), processes every clip;
  killed midway and rerun, it writes the same shard files, byte for byte.
- On a `cluster_utils.Cluster` (nodes that each advertise 1 CPU), the derived layout follows the
  nodes, 2 worker nodes process more clips per second than 1, and the training loop's reader
  (training/data.py) reads the shards through Ray Data from a task on every node. The cluster
  runs in a child process so that this pytest's own Ray session (tests/conftest.py) is untouched.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers import free_port
from test_training_job import BIN, _kill_head

pytestmark = pytest.mark.ray

SMALL = ["--frames", "4", "--stride", "3", "--size", "64"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    from data_pipeline.synthetic import generate

    return generate(tmp_path_factory.mktemp("videos"), clips=12, seed=3, min_frames=48, max_frames=64)


@pytest.fixture
def ray_start_head():
    temp_dir = tempfile.mkdtemp(prefix="iwd", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "INKWALK_NO_PROGRESS": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    cmd = [str(BIN / "ray"), "start", "--head", "--port", str(port), "--num-cpus", "2", "--temp-dir", temp_dir,
           "--object-store-memory", str(400 * 2**20), "--include-dashboard", "false",
           "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
           "--dashboard-agent-grpc-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
           "--metrics-export-port", str(free_port()), "--disable-usage-stats"]
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=180)
        yield {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    finally:
        _kill_head(temp_dir)


def _shards(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").glob("*.parquet"))}


@pytest.mark.slow
def test_documented_command_on_a_ray_start_cluster(ray_start_head, videos, tmp_path):
    env = ray_start_head
    (tmp_path / "data").symlink_to(videos.parent)
    command = [sys.executable, "-m", "data_pipeline.clvhd", "--manifest", "data/manifest.csv",
               "--clips-per-video", "3", "--rows-per-shard", "2", *SMALL]
    done = subprocess.run([*command, "--out", "out"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["clips_written"], summary["rejected"]) == (36, 0), summary  # every clip, none "missing-file"
    assert summary["layout"]["cluster_cpus"] == 2.0 and len(_shards(tmp_path / "out")) == 18

    # kill the driver once the first shards exist (one unit per task, one task at a time, so it is midway)
    killed = subprocess.Popen([*command, "--out", "again", "--cpus-per-task", "2", "--tasks", "18"], env=env,
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = tmp_path / "again" / "shards"
    deadline = time.monotonic() + 240
    while killed.poll() is None and time.monotonic() < deadline and len(list(shards.glob("*.parquet"))) < 2:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    written_before = len(_shards(tmp_path / "again"))
    assert 2 <= written_before < 18, f"not interrupted midway ({written_before} shards)"
    resumed = subprocess.run([*command, "--out", "again"], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert summary["clips_already_written"] >= 2 * written_before - 2 and summary["clips_total"] == 36
    assert _shards(tmp_path / "again") == _shards(tmp_path / "out")  # same files, byte for byte


def _others_busy(run) -> tuple[float, float]:
    """(seconds `run` took, CPU cores the rest of the machine used meanwhile, beyond this process tree)."""
    import psutil

    def busy() -> float:
        t = psutil.cpu_times()
        return t.user + t.nice + t.system + t.irq + t.softirq + t.steal

    def ours() -> float:
        total = 0.0
        for p in [psutil.Process(), *psutil.Process().children(recursive=True)]:
            try:
                total += sum(p.cpu_times()[:2])
            except psutil.Error:
                pass
        return total

    b0, o0, t0 = busy(), ours(), time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    return seconds, max(0.0, (busy() - b0) - (ours() - o0)) / seconds


def _on_a_cluster(manifest: str, work: str) -> dict:
    """In a child process: 1 then 2 worker nodes of 1 CPU each; throughput, layouts, and reads per node."""
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from data_pipeline.clvhd import run
    from data_pipeline.config import Config
    from data_pipeline.shards import read_shards
    from training.data import columns_for, shard_batches

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules
    os.environ["INKWALK_NO_PROGRESS"] = "1"
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "temp_dir": tempfile.mkdtemp(prefix="iwc", dir="/tmp"), "include_dashboard": False,
        "object_store_memory": 200 * 2**20})
    report: dict = {"runs": []}
    try:
        cluster.add_node(num_cpus=1, object_store_memory=200 * 2**20)
        ray.init(address=cluster.address, log_to_driver=False)
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        settings = dict(frames=8, stride=4, size=256, clips_per_video=12)  # 144 clips, ~4 s on one core
        for nodes in (1, 2):
            if nodes == 2:
                cluster.add_node(num_cpus=1, object_store_memory=200 * 2**20)
                cluster.wait_for_nodes()
            run(Config(manifest=manifest, out=f"{work}/warm{nodes}", **settings))  # start workers, imports
            out = f"{work}/nodes{nodes}"
            summaries = []
            seconds, others = _others_busy(lambda: summaries.append(run(Config(manifest=manifest, out=out,
                                                                                 **settings))))
            report["runs"].append({"nodes": nodes, "seconds": seconds, "others_busy": others,
                                   "clips": summaries[0]["clips_written"], "layout": summaries[0]["layout"]})

        @ray.remote(num_cpus=0)
        def train_reader(split) -> tuple[str, int]:
            """What a training worker does with its dataset shard: batches through training/data.py."""
            import torch

            seen = 0
            for epoch, _, batch in shard_batches(split, "frames", 1, torch.device("cpu")):
                if epoch > 0:
                    break
                seen += len(batch["frames"])
            return ray.get_runtime_context().get_node_id(), seen

        workers = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
        splits = read_shards(f"file://{work}/nodes2", columns=columns_for("frames")).streaming_split(len(workers))
        report["reads"] = ray.get([train_reader.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            node, soft=False)).remote(split) for node, split in zip(workers, splits)])
        report["worker_nodes"] = workers
    finally:
        ray.shutdown()
        cluster.shutdown()
    return report


@pytest.mark.slow
def test_more_nodes_more_clips_per_second_and_training_reads_on_every_node(videos, tmp_path):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        report = pool.apply(_on_a_cluster, (str(videos), str(tmp_path)))
    one, two = report["runs"]
    assert one["clips"] == two["clips"] == 144
    # the layout follows the cluster: 1 then 2 decode slots, 4 tasks each
    assert (one["layout"]["slots"], two["layout"]["slots"]) == (1, 2) and two["layout"]["cluster_cpus"] == 2.0
    assert _shards(tmp_path / "nodes1") == _shards(tmp_path / "nodes2")  # the layout never changes the shards
    # the training reader ran on both worker nodes and saw every clip once
    assert sorted(node for node, _ in report["reads"]) == sorted(report["worker_nodes"])
    assert all(seen > 0 for _, seen in report["reads"]) and sum(seen for _, seen in report["reads"]) == 144
    ratio = one["seconds"] / two["seconds"]
    print(f"1 worker node: {144 / one['seconds']:.1f} clips/s, 2: {144 / two['seconds']:.1f} clips/s "
          f"({ratio:.2f}x); other processes used {one['others_busy']:.2f} / {two['others_busy']:.2f} cores")
    others = max(one["others_busy"], two["others_busy"])
    if others > 0.5:  # then 2 nodes cannot have 1.5 cores
        pytest.skip(f"the machine was busy (other processes used up to {others:.2f} of the 2 cores), so 1 vs 2 "
                    f"nodes cannot be timed; measured {ratio:.2f}x")
    assert ratio >= 1.3, f"2 worker nodes gave only {ratio:.2f}x the clips per second of 1"
