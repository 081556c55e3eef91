"""One collection on a head and two worker nodes (ray.cluster_utils.Cluster): pieces run on both
worker nodes and the video is identical, frame for frame, to the single-process render."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]


def test_segments_of_one_collection_run_on_both_worker_nodes():
    temp = tempfile.mkdtemp(prefix="rmn", dir="/tmp")  # its own Ray temp dir: never another cluster's
    env = {**os.environ, "RAY_TMPDIR": temp, "HF_HUB_OFFLINE": "1", "INKWALK_NO_PROGRESS": "1",
           "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "scripts" / "multinode_render.py")], env=env,
                          capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT "):])
    # 4 paintings, no keyframes, 6 frames per step, hold round(0.25 * 8) = 2: 3*1*7 + 1 + 4*2
    assert result["frames"] == result["local_frames"] == 30
    assert result["chunks"] == 4
    assert result["nodes"] == sorted(result["worker_nodes"])  # both worker nodes encoded pieces
    assert result["identical"]


@pytest.mark.slow  # about 70 s on the shared box: a cluster start and a Serve deployment
def test_scroll_windows_of_one_step_run_on_both_worker_nodes():
    """A scroll sampled by ConCLVDGenerator replicas on two worker nodes = in process, bit for bit."""
    temp = tempfile.mkdtemp(prefix="rms", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": temp, "HF_HUB_OFFLINE": "1", "INKWALK_NO_PROGRESS": "1",
           "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "scripts" / "multinode_scroll.py")], env=env,
                          capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT "):])
    assert result["identical"]
    assert result["step_nodes"] == result["worker_nodes"]        # the first step's windows ran on both nodes
    assert result["threads"] == [1]                  # each replica's torch runs on its CPU share, not the host's cores
