"""One name per idea across commands, frame rates as people write them, quiet ends in a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from inkwalk.cli import build_parser, main
from inkwalk.video import format_fps


def test_walk_and_render_name_the_chunk_store_alike_and_cache_still_works(tmp_path, capsys):
    parser = build_parser()
    walk = parser.parse_args(["walk", "a.png", "b.png", "-o", "w.mp4", "--store", str(tmp_path)])
    render = parser.parse_args(["render", "folder", "-o", "w.mp4", "--store", str(tmp_path)])
    assert walk.store == render.store == str(tmp_path)
    assert capsys.readouterr().err == ""
    old = parser.parse_args(["walk", "a.png", "b.png", "-o", "w.mp4", "--cache", str(tmp_path)])
    assert old.store == str(tmp_path)
    assert capsys.readouterr().err.strip() == "inkwalk walk: warning: --cache is deprecated, use --store"


@pytest.mark.parametrize("size, expected", [("x2", (128, 96)), ("X1.5", (96, 72)), ("160x120", (160, 120)),
                                            (None, (256, 192))])
def test_upscale_size_takes_what_walk_upscale_takes(size, expected, tmp_path, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(src)
    out = tmp_path / "u.png"
    argv = ["upscale", str(src), "-o", str(out), "--backend", "lanczos"] + (["--size", size] if size else [])
    assert main(argv) == 0, capsys.readouterr().err
    assert Image.open(out).size == expected


@pytest.mark.parametrize("fps, shown", [(29.9999, "30"), (30000 / 1001, "29.97"), (24000 / 1001, "23.976"),
                                        (60000 / 1001, "59.94"), (Fraction(25), "25"), (12.5, "12.5"),
                                        (24.000001, "24"), (0.0, "unknown")])
def test_frame_rates_print_as_people_write_them(fps, shown):
    assert format_fps(float(fps)) == shown


def test_info_into_a_closed_pipe_ends_quietly(tmp_path):
    """`inkwalk info VIDEO | head -0`: the reader is gone before inkwalk writes."""
    from inkwalk.video_writer import write_video

    video = write_video(tmp_path / "c.mp4", [np.zeros((16, 16, 3), np.uint8)] * 2, fps=2,
                        metadata={"app": "artwalks", "settings": {"seed": 1}, "paintings": ["ab" * 32] * 2})
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    result = subprocess.run([sys.executable, "-m", "inkwalk.cli", "info", str(video)], stdout=write_end,
                            stderr=subprocess.PIPE, text=True, env=env, timeout=60)
    os.close(write_end)
    assert result.stderr == "" and result.returncode == 141
