"""CLIP-text and CLIP-temp on the tiny CLIP: constant video, shuffled noise, files and arrays."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import moving_clip
from inkwalk.errors import InkwalkError
from inkwalk.metrics import clip_temporal_score, clip_text_score, image_embeddings, text_embedding


def test_clip_temp_of_constant_video_is_one_and_of_shuffled_noise_lower(tiny_models):
    constant = np.repeat(moving_clip(1, 64, 64), 5, axis=0)
    assert clip_temporal_score(constant, models_dir=tiny_models) == pytest.approx(1.0, abs=1e-5)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    noise = noise[rng.permutation(len(noise))]
    assert clip_temporal_score(noise, models_dir=tiny_models) < 1.0 - 1e-4


def test_clip_text_is_hundred_times_mean_cosine(tiny_models):
    clip = moving_clip(3, 64, 64, speed=4)
    score = clip_text_score(clip, "a misty mountain", models_dir=tiny_models)
    expected = 100 * float(np.mean(image_embeddings(clip, models_dir=tiny_models)
                                   @ text_embedding("a misty mountain", models_dir=tiny_models)))
    assert score == pytest.approx(expected, rel=1e-5) and -100 <= score <= 100
    assert score != pytest.approx(clip_text_score(clip, "zzzz qqq", models_dir=tiny_models), abs=1e-6)


def test_eval_cli_reads_a_video(tiny_models, tmp_path, capsys):
    from inkwalk.cli import main
    from inkwalk.video_writer import write_video

    path = write_video(tmp_path / "v.mp4", moving_clip(4, 64, 64), fps=8)
    assert main(["eval", str(path), "--prompt", "a boat", "--models", str(tiny_models)]) == 0
    out = capsys.readouterr().out
    assert "CLIP-text" in out and "CLIP-temp" in out and "frames 4" in out


def test_one_frame_has_no_temporal_score(tiny_models):
    with pytest.raises(InkwalkError, match="at least 2 frames"):
        clip_temporal_score(moving_clip(1, 32, 32), models_dir=tiny_models)
