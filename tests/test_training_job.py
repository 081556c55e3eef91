"""`ray job submit --working-dir . -- python -m training.train_conclvd` against a `ray start --head` cluster.

A separate head (own temp folder, own ports, token auth off for the test: STACK.md pitfall 4) is
started in a subprocess and stopped in teardown by killing only the processes of that head.
Slow (a cluster start plus a 2-worker run): `pytest -m slow tests/test_training_job.py`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import free_port

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent



def _kill_head(temp_dir: str) -> None:
    """End the processes of this head only (their command lines name its temp folder)."""
    import psutil

    mine = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any(temp_dir in part for part in (proc.info["cmdline"] or [])):
            mine.append(proc)
    for proc in mine:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(mine, timeout=10)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def ray_head():
    temp_dir = tempfile.mkdtemp(prefix="iwjob", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1", "INKWALK_NO_PROGRESS": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # jobs use the node's `python` (pitfall 5)
    env.pop("RAY_ADDRESS", None)
    dashboard = free_port()
    cmd = [str(BIN / "ray"), "start", "--head", "--port", str(free_port()), "--num-cpus", "2",
           "--temp-dir", temp_dir, "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
           "--dashboard-port", str(dashboard), "--ray-client-server-port", str(free_port()),
           "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
           "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port()),
           "--disable-usage-stats"]
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=180)
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        _kill_head(temp_dir)


@pytest.mark.slow
def test_ray_job_submit_trains_and_exports(ray_head, tiny_models, tmp_path):
    address, env = ray_head
    storage = tmp_path / "runs"
    submit = [str(BIN / "ray"), "job", "submit", "--address", address, "--submission-id", "inkwalk-train-test",
              "--working-dir", str(ROOT), "--", "python", "-m", "training.train_conclvd",
              "--config", "training/configs/tiny_cpu.yaml", "--model.models_dir", str(tiny_models),
              "--run.storage_path", str(storage), "--run.name", "job", "--train.max_steps", "4",
              "--train.checkpoint_every", "2", "--train.log_every", "2"]
    started = time.monotonic()
    out = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    ask = ("from ray.job_submission import JobSubmissionClient as C; "
           f"print(C({address!r}).get_job_status('inkwalk-train-test').value)")
    status = subprocess.run([sys.executable, "-c", ask], env=env, capture_output=True, text=True, timeout=120)
    log = out.stdout[-3000:] + out.stderr[-3000:]
    assert status.stdout.strip().splitlines()[-1:] == ["SUCCEEDED"], log + status.stderr[-2000:]
    export = storage / "job" / "motion_module.safetensors"
    assert export.is_file() and export.stat().st_size > 0, log
    assert "[train]" in out.stdout and "step=4" in out.stdout, log  # metrics reached the job log
    print(f"ray job submit round trip: {time.monotonic() - started:.1f} s")
