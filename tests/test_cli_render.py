"""`inkwalk demo` and `inkwalk render` as a user runs them: an embedded Ray started and stopped by
the command, chunks reused by a second run, an interrupt that leaves no output behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from helpers import free_port

from inkwalk.video import probe, read_frames

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ray_tmpdir():
    """The RAY_TMPDIR of one test's commands: short (Ray's socket paths have a length limit), removed after."""
    folder = Path(tempfile.mkdtemp(prefix="rcl", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _env(tmp_path: Path, ray_tmpdir: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INKWALK_NO_PROGRESS": "1", "PYTHONPATH": str(ROOT),
           "INKWALK_CACHE": str(tmp_path / "cache"), "RAY_TMPDIR": str(ray_tmpdir)}
    env.pop("RAY_ADDRESS", None)  # the embedded path, whatever the caller's shell says
    env.pop("INKWALK_API_TOKEN", None)  # `serve --host 0.0.0.0` must find no token
    return env


def _processes_using(folder: Path) -> list[str]:
    """Command lines of the processes that name `folder` (Ray's raylet, GCS and workers name their session)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(folder) in cmdline:
            found.append(cmdline[:200])
    return found


def _inkwalk(*args: str) -> list[str]:
    return [sys.executable, "-m", "inkwalk.cli", *args]


def test_readme_main_job_renders_three_paintings_on_an_embedded_ray(tmp_path, ray_tmpdir):
    out = tmp_path / "demo.mp4"
    proc = subprocess.Popen(_inkwalk("demo", "-o", str(out), "--size", "160x96", "--frames", "4", "--hold", "0.25",
                                     "--fps", "8"), env=_env(tmp_path, ray_tmpdir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    sessions, processes = set(), False  # what the running demo put in RAY_TMPDIR, seen from outside
    while proc.poll() is None:
        sessions |= {p.name for p in ray_tmpdir.glob("iw*/session_*")}
        processes = processes or bool(_processes_using(ray_tmpdir))
        time.sleep(0.3)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert sessions and processes  # the embedded Ray ran in RAY_TMPDIR ...
    assert list(ray_tmpdir.iterdir()) == []  # ... and left no session folder, no process, no INFO line
    deadline = time.time() + 15  # workers notice their raylet is gone within seconds
    while _processes_using(ray_tmpdir) and time.time() < deadline:
        time.sleep(0.5)
    assert _processes_using(ray_tmpdir) == []
    assert not re.search(r"\bINFO\b", stderr), stderr[-3000:]
    # 3 paintings, no keyframes, 4 frames per step, hold 2: 2*1*5 + 1 + 3*2
    frames = read_frames(out)
    assert frames.shape == (17, 96, 160, 3)
    assert "3 paintings rendered on Ray" in stdout
    assert np.abs(frames[0].astype(int) - frames[8]).mean() > 5  # it walked from one painting to the next


def test_render_a_folder_then_reuse_then_an_interrupt_leaves_no_output(tmp_path, ray_tmpdir):
    from inkwalk.paintings import collection
    from inkwalk.video import save_image

    folder = tmp_path / "paintings"
    for i, p in enumerate(collection(3, size=(96, 64), seed=2)):
        save_image(folder / f"{i}.png", p)
    (folder / "notes.txt").write_text("not a painting: ignored")
    env = _env(tmp_path, ray_tmpdir)
    args = ["--preset", "offline", "--size", "64x64", "--frames", "3", "--fps", "8", "--upscale", "x2",
            "--upscaler", "lanczos"]
    first = subprocess.run(_inkwalk("render", str(folder), "-o", str(tmp_path / "a.mp4"), *args), env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert probe(tmp_path / "a.mp4").frames == 2 * 1 * 4 + 1 and "chunks rendered 3" in first.stdout
    assert (tmp_path / "a.sheet.png").exists()

    # a longer render, interrupted once its first chunks exist: exit 130, no video, no temporaries
    chunks = tmp_path / "cache" / "chunks"
    before = len(list(chunks.rglob("*.mp4")))
    slow = subprocess.Popen(_inkwalk("render", str(folder), "-o", str(tmp_path / "b.mp4"), *args, "--frames", "60",
                                     "--size", "96x96", "--inflight", "1"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while len(list(chunks.rglob("*.mp4"))) <= before:
        assert slow.poll() is None and time.time() < deadline, slow.communicate()
        time.sleep(0.2)
    slow.send_signal(signal.SIGINT)
    _, err = slow.communicate(timeout=120)
    assert slow.returncode == 130 and "interrupted" in err
    assert list(ray_tmpdir.iterdir()) == []  # an interrupt leaves no session folder either
    assert not (tmp_path / "b.mp4").exists()
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []

    # the same render again: what was finished before the interrupt is reused
    again = subprocess.run(_inkwalk("render", str(folder), "-o", str(tmp_path / "b.mp4"), *args, "--frames", "60",
                                    "--size", "96x96"), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reused 0" not in again.stdout and probe(tmp_path / "b.mp4").frames == 2 * 1 * 61 + 1


def test_render_errors_are_one_line_and_start_nothing(tmp_path, ray_tmpdir):
    env = _env(tmp_path, ray_tmpdir)
    t0 = time.time()
    for args, phrase in [(["render", str(tmp_path / "missing"), "-o", "x.mp4"], "no such folder"),
                         (["render", str(tmp_path), "-o", "x.mp4"], "at least 2 paintings"),
                         (["serve", "--address", "127.0.0.1:9"], "cannot connect to the Ray cluster"),
                         (["serve", str(tmp_path / "none.yaml")], "not a Serve config"),
                         (["serve", "--host", "0.0.0.0"], "--insecure-no-token")]:
        proc = subprocess.run(_inkwalk(*args), env=env, capture_output=True, text=True, timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and phrase in lines[0], proc.stderr
    assert time.time() - t0 < 60


def test_serve_deploys_the_apps_and_sigterm_takes_them_down(tmp_path, tiny_models, ray_tmpdir):
    import urllib.request

    port = free_port()
    env = {**_env(tmp_path, ray_tmpdir), "INKWALK_MODELS": str(tiny_models)}  # reaches every replica
    proc = subprocess.Popen(_inkwalk("serve", "--port", str(port), "--store", str(tmp_path / "results")),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 400
        while True:
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/conclvd/jobs", timeout=5) as r:
                    if r.status == 200:  # the last app of the config is up
                        break
            except OSError:
                time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and f"http://127.0.0.1:{port}/artwalks/docs" in out and "stopping" in out
    assert not re.search(r"\bINFO\b", err) and list(ray_tmpdir.iterdir()) == [], err[-3000:]
    with pytest.raises(OSError):  # nothing listens any more: the apps and the local Ray are gone
        urllib.request.urlopen(f"http://127.0.0.1:{port}/artwalks/jobs", timeout=5)
