"""`walk --from V` and `t2v --from V` reuse the settings an inkwalk mp4 records; flags given win."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inkwalk.artwalks import video_metadata
from inkwalk.provenance import command_metadata
from inkwalk.cli import main
from inkwalk.errors import InkwalkError
from inkwalk.video_writer import write_video
from inkwalk.walk_settings import WalkSettings

CLIP = [np.zeros((16, 16, 3), np.uint8)] * 2


class Stop(InkwalkError):
    """Raised by the stand-in for the render: the settings were seen, no need to render."""


@pytest.fixture
def seen(monkeypatch):
    """The settings `walk` / `t2v` would render with, captured where they are handed on."""
    import inkwalk.local_render
    import inkwalk.settings_schemas

    captured = {}

    def walk_render(paintings, out, settings, **kwargs):
        captured["walk"] = settings
        raise Stop("stop")

    real_parse = inkwalk.settings_schemas.parse_conclvd_settings

    def t2v_parse(given, defaults, limits, label):
        captured["t2v"] = real_parse(given, defaults, limits, label)
        raise Stop("stop")

    monkeypatch.setattr(inkwalk.local_render, "render_collection_in_process", walk_render)
    monkeypatch.setattr(inkwalk.settings_schemas, "parse_conclvd_settings", t2v_parse)
    return captured


@pytest.fixture
def paintings(tmp_path):
    paths = [tmp_path / f"p{i}.png" for i in range(2)]
    for i, path in enumerate(paths):
        Image.fromarray(np.full((32, 48, 3), 60 * i, np.uint8)).save(path)
    return [str(p) for p in paths]


def test_walk_from_a_video_reuses_its_settings_and_flags_override(tmp_path, paintings, seen, capsys):
    made = WalkSettings(preset="offline", frames=3, size=(48, 32), fps=12.0, hold=0.5, strength=2.0)
    video = write_video(tmp_path / "old.mp4", CLIP, fps=12, metadata=video_metadata(made, ["a" * 64] * 2, {}))
    code = main(["walk", *paintings, "-o", str(tmp_path / "new.mp4"), "--from", str(video), "--fps", "6",
                 "--store", str(tmp_path / "store")])
    assert code == 1 and capsys.readouterr().err.strip() == "inkwalk: error: stop"
    settings = seen["walk"]
    assert settings == WalkSettings(preset="offline", frames=3, size=(48, 32), fps=6.0, hold=0.5, strength=2.0)


def test_t2v_from_a_video_reuses_its_prompt_and_settings(tmp_path, seen, capsys):
    recorded = {"negative_prompt": "blur", "frames": 4, "steps": 3, "guidance": 6.5, "size": 64, "seed": 9,
                "fps": 4.0, "sofp": False, "flow": "dis", "weighting": "flat", "noise": "random"}
    video = write_video(tmp_path / "old.mp4", CLIP, fps=4,
                        metadata={**command_metadata("conclvd", recorded), "prompt": "misty hills"})
    assert main(["t2v", "-o", str(tmp_path / "new.mp4"), "--from", str(video), "--seed", "10",
                 "--noise", "shuffle_context"]) == 1
    assert capsys.readouterr().err.strip() == "inkwalk: error: stop"
    got = seen["t2v"]
    assert (got.negative_prompt, got.frames, got.steps, got.guidance, got.size, got.seed) == ("blur", 4, 3, 6.5, (64, 64), 10)
    assert (got.weighting, got.noise) == ("flat", "shuffle_context")  # recorded, and the flag given wins


@pytest.mark.parametrize("metadata, phrase", [
    (None, "has no inkwalk settings"),
    ({"app": "conclvd", "settings": {"frames": 4}, "prompt": "x"}, "made by inkwalk 'conclvd', not 'artwalks': "
                                                                    "use `inkwalk t2v --from`"),
])
def test_from_a_video_that_cannot_be_reused_is_one_line(tmp_path, paintings, metadata, phrase, capsys):
    video = write_video(tmp_path / "old.mp4", CLIP, fps=4, metadata=metadata)
    assert main(["walk", *paintings, "-o", str(tmp_path / "new.mp4"), "--from", str(video)]) == 1
    err = capsys.readouterr().err.strip()
    assert phrase in err and "\n" not in err
