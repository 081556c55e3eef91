"""Every bad CLI input is refused in one line within seconds; no interrupted render tears an output.

The table of bad inputs is `bad_inputs.CLI`; each row runs in-process through `inkwalk.cli.main`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from bad_inputs import CLI, fill, make_files


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_files(tmp_path_factory.mktemp("bad-inputs"))


@pytest.fixture(scope="module")
def silent_hub():
    """A port that accepts connections and never answers: a hub behind a dead network."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module", autouse=True)
def warm_imports():
    """Import what the commands import lazily, so a row's time is its checks, not Python's imports."""
    import av  # noqa: F401
    import decord  # noqa: F401
    import huggingface_hub.constants  # noqa: F401

    import inkwalk.availability  # noqa: F401
    import inkwalk.cli.walk  # noqa: F401
    import inkwalk.limits  # noqa: F401
    import inkwalk.metrics  # noqa: F401
    import inkwalk.models  # noqa: F401


def run_cli(argv: list[str]) -> int:
    from inkwalk.cli import main

    try:
        return main(argv)
    except SystemExit as exc:  # argparse exits by itself
        return exc.code


@pytest.mark.parametrize("case", CLI, ids=[c.id for c in CLI])
def test_bad_cli_input_is_refused_fast_in_one_line(case, files, silent_hub, tmp_path, monkeypatch, capsys):
    names = {**{k: str(v) for k, v in files.items()}, "out": str(tmp_path), "silent": silent_hub}
    for key, value in case.env:
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, fill(value, names))
    start = time.perf_counter()
    code = run_cli([fill(arg, names) for arg in case.argv])
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err.strip().splitlines()
    assert code == case.code, err
    assert len(err) == 1 and case.message in err[0], err
    assert elapsed < case.seconds, f"{elapsed:.2f} s"
    assert list(tmp_path.iterdir()) == []  # refused before writing anything


def test_the_table_covers_every_command_and_kind_of_mistake():
    assert len(CLI) >= 25 and len({c.id for c in CLI}) == len(CLI)
    assert {c.argv[0] for c in CLI} >= {"walk", "t2v", "eval", "upscale", "interpolate", "demo"}


# ----------------------------------------------------------------------------- interrupted renders


def _walk(files, out, cache, *extra) -> list[str]:
    return ["walk", str(files["a.png"]), str(files["b.png"]), "-o", str(out), "--preset", "offline",
            "--size", "160x120", "--frames", "2", "--store", str(cache), "--no-sheet", *extra]


def _debris(*folders) -> list[str]:
    """Hidden files (temporary outputs) left anywhere under `folders`."""
    return [str(p) for folder in folders for p in folder.rglob(".*")]


def test_an_interrupted_render_keeps_the_previous_video(files, tmp_path, monkeypatch, capsys):
    from inkwalk.video import probe
    from inkwalk.video_writer import VideoWriter

    out, cache = tmp_path / "walk.mp4", tmp_path / "cache"
    assert run_cli(_walk(files, out, cache)) == 0
    before = out.read_bytes()
    written = {"n": 0}
    original = VideoWriter.write

    def write_then_interrupt(self, frame):
        written["n"] += 1
        if written["n"] > 20:  # inside the first new chunk: a painting held for 2 s
            raise KeyboardInterrupt
        original(self, frame)

    monkeypatch.setattr(VideoWriter, "write", write_then_interrupt)
    assert run_cli(_walk(files, out, cache, "--hold", "2")) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "inkwalk: interrupted"
    assert out.read_bytes() == before and probe(out).frames == 4  # (2-1)(0+1)(2+1)+1, no hold
    assert _debris(tmp_path) == []


def test_sigterm_mid_render_keeps_the_previous_video_and_leaves_no_temp_file(files, tmp_path):
    import os

    out, cache, scratch = tmp_path / "walk.mp4", tmp_path / "cache", tmp_path / "scratch"
    assert run_cli(_walk(files, out, cache)) == 0
    before = out.read_bytes()
    scratch.mkdir()
    # the walk's chunks are cached: the second run encodes two chunks of 1440 held frames each,
    # in temporary folders under TMPDIR, where this test watches for the partial chunk
    proc = subprocess.Popen([sys.executable, "-m", "inkwalk.cli", *_walk(files, out, cache, "--hold", "60")],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(scratch)})
    deadline = time.monotonic() + 120
    while not list(scratch.rglob(".*.tmp-*.mp4")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the render ended before it could be interrupted"
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == "inkwalk: terminated"
    assert out.read_bytes() == before
    assert _debris(tmp_path) == [] and list(scratch.iterdir()) == []
