"""`inkwalk walk A B -o OUT` with no --preset runs with what is installed and says which preset ran;
missing weights are named all at once, in one line, with the way out."""

from __future__ import annotations

import argparse

import pytest

from inkwalk.cli.walk import default_preset

PAPER_MODELS = ("kandinsky-2-2-prior", "kandinsky-2-2-decoder", "film-style", "realesrgan-x4plus")


def walk_args(models: str, **options) -> argparse.Namespace:
    from inkwalk.cli import build_parser

    argv = ["walk", "a.png", "b.png", "-o", "w.mp4", "--models", models]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return build_parser().parse_args(argv)


def test_without_weights_the_default_is_offline_and_names_every_missing_model(tmp_path):
    preset, note = default_preset(walk_args(str(tmp_path)))
    assert preset == "offline"
    assert note.startswith("preset: offline") and all(name in note for name in PAPER_MODELS)
    assert "--preset paper" in note and "\n" not in note


def test_with_the_paper_weights_installed_the_default_is_paper(tiny_models):
    assert default_preset(walk_args(str(tiny_models))) == ("paper", "preset: paper (its weights are on this machine)")


def test_the_default_follows_the_options_given(tmp_path):
    """Without Kandinsky keyframes, FILM or upscaling, paper needs no weights at all."""
    args = walk_args(str(tmp_path), keyframes=0, interpolator="blend", upscale="none")
    assert default_preset(args)[0] == "paper"


def test_paper_without_weights_names_all_missing_models_in_one_line(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from inkwalk.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    painting = tmp_path / "a.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(painting)
    code = main(["walk", str(painting), str(painting), "-o", str(tmp_path / "w.mp4"), "--preset", "paper",
                 "--size", "64x64", "--models", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err
    assert err.startswith("inkwalk: error: 4 models not available:") and all(n in err for n in PAPER_MODELS)
    assert "`inkwalk models list`" in err and err.endswith("--preset offline")


def test_film_without_a_download_does_not_hide_the_others(tmp_path, monkeypatch):
    """film-style has no public download: the downloadable models are still named, not probed."""
    from inkwalk.availability import ModelsUnavailableError, require_models

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with pytest.raises(ModelsUnavailableError) as info:
        require_models(PAPER_MODELS, tmp_path)
    assert all(name in str(info.value) for name in PAPER_MODELS) and "not downloaded yet" in str(info.value)
