"""The Ray Data CLV-HD pipeline end to end: shards, rejects, resume, latent cache."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from data_pipeline.clips import ClipSpec, make_clip
from data_pipeline.clvhd import Config, PipelineError, run
from data_pipeline.shards import read_shards, row_to_arrays, shard_files
from data_pipeline.synthetic import ClipPlan, generate, render_clip

SETTINGS = dict(frames=4, stride=3, size=32, seed=7)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clvhd-synthetic")
    return generate(root, clips=5, seed=11, min_frames=14, max_frames=30, scale=0.25)


def _rows(out: Path) -> list[dict]:
    return [row_to_arrays(r) for f in shard_files(str(out)) for r in pq.read_table(f).to_pylist()]


def test_synthetic_manifest_to_shards(ray_session, synthetic, tmp_path):
    out = tmp_path / "out"
    summary = run(Config(manifest=str(synthetic), out=str(out), clips_per_video=2, clips_per_task=4,
                         rows_per_shard=3, **SETTINGS))
    rows = _rows(out)
    assert summary["clips_written"] == len(rows) == 10 and summary["rejected"] == 0
    # each decode task writes its own shards: at most rows_per_shard clips each, no temporary file left
    sizes = [pq.read_metadata(f).num_rows for f in shard_files(str(out))]
    assert max(sizes) <= 3 and sum(sizes) == 10 and summary["shards"] == len(sizes) >= 4
    assert sorted(p.name for p in (out / "shards").iterdir()) == sorted(Path(f).name for f in shard_files(str(out)))
    assert summary["bytes_written"] == sum(os.path.getsize(f) for f in shard_files(str(out)))
    assert json.loads((out / "summary.json").read_text())["clips_total"] == 10
    assert len({r["clip_id"] for r in rows}) == 10
    for row in rows:
        assert row["frames"].shape == (4, 32, 32, 3) and row["frames"].dtype == np.uint8
        assert row["indices"].tolist() == [row["indices"][0] + 3 * k for k in range(4)]
        # the pipeline writes exactly what the pure function gives for this seed: deterministic
        spec = ClipSpec(row["video"], row["caption"], clip=0, clips_per_video=2, **SETTINGS)
        if spec.clip_id != row["clip_id"]:
            spec = ClipSpec(row["video"], row["caption"], clip=1, clips_per_video=2, **SETTINGS)
        expected = make_clip(spec)
        assert spec.clip_id == row["clip_id"]
        assert np.array_equal(expected["indices"], row["indices"])
        assert np.array_equal(expected["frames"], row["frames"])
    ds = read_shards(str(out))
    assert ds.count() == 10


def test_bad_inputs_become_rejects_with_distinct_reasons(ray_session, synthetic, tmp_path):
    videos = tmp_path / "v"
    videos.mkdir()
    (videos / "corrupt.mp4").write_bytes(os.urandom(4096))
    (videos / "empty.mp4").write_bytes(b"")
    from inkwalk.video import write_video

    write_video(videos / "short.mp4", render_clip(ClipPlan("s", 48, 32, 6, 12.0, ("rain",), 1, 1)), 12)
    good = [row for row in csv.DictReader(open(synthetic))][:2]
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "caption"])
        for row in good:
            w.writerow([str(synthetic.parent / row["video"]), row["caption"]])
        w.writerows([[str(videos / "corrupt.mp4"), "corrupt"], [str(videos / "empty.mp4"), "zero bytes"],
                     [str(videos / "missing.mp4"), "missing"], [str(videos / "short.mp4"), "too short"],
                     [str(synthetic.parent / good[0]["video"]), ""],
                     [str(synthetic.parent / good[1]["video"]), "listed twice"]])
    out = tmp_path / "out"
    summary = run(Config(manifest=str(manifest), out=str(out), **SETTINGS))
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    by_video = {(Path(r["video"]).name, r["caption"]): r["reason"] for r in rejects}
    assert by_video == {("corrupt.mp4", "corrupt"): "corrupt", ("empty.mp4", "zero bytes"): "empty-file",
                        ("missing.mp4", "missing"): "missing-file", ("short.mp4", "too short"): "too-short",
                        (Path(good[0]["video"]).name, ""): "empty-caption",
                        (Path(good[1]["video"]).name, "listed twice"): "duplicate"}
    assert summary["rejects_by_reason"] == {reason: 1 for reason in by_video.values()}
    assert sorted(r["caption"] for r in _rows(out)) == sorted(row["caption"] for row in good)


def test_resume_writes_every_clip_exactly_once(ray_session, synthetic, tmp_path):
    lines = synthetic.read_text().splitlines()
    partial = synthetic.parent / "first-half.csv"
    partial.write_text("\n".join(lines[:3]) + "\n")  # header + 2 videos
    out = tmp_path / "out"
    first = run(Config(manifest=str(partial), out=str(out), **SETTINGS))
    assert first["clips_written"] == 2
    first_shards = {f: os.path.getmtime(f) for f in shard_files(str(out))}
    (out / "shards" / "part-r000-00001.parquet.tmp").write_bytes(b"half a shard from a killed run")

    second = run(Config(manifest=str(synthetic), out=str(out), **SETTINGS))
    assert (second["clips_already_written"], second["clips_written"], second["clips_total"]) == (2, 3, 5)
    ids = [r["clip_id"] for r in _rows(out)]
    assert len(ids) == len(set(ids)) == 5
    assert all(os.path.getmtime(f) == t for f, t in first_shards.items())  # earlier shards untouched
    assert not list((out / "shards").glob("*.tmp"))

    third = run(Config(manifest=str(synthetic), out=str(out), **SETTINGS))
    assert third["clips_written"] == 0 and len(_rows(out)) == 5
    with pytest.raises(PipelineError, match="other settings"):
        run(Config(manifest=str(synthetic), out=str(out), **{**SETTINGS, "stride": 2}))


def test_encode_stage_caches_latents_and_text_embeddings(ray_session, synthetic, tiny_models, tmp_path):
    import torch
    from transformers import CLIPTextModel

    from inkwalk.models import load_pretrained

    two = synthetic.parent / "two.csv"
    two.write_text("\n".join(synthetic.read_text().splitlines()[:3]) + "\n")
    out = tmp_path / "out"
    summary = run(Config(manifest=str(two), out=str(out), encode=True, models=str(tiny_models),
                         encode_batch=2, **SETTINGS))
    rows = _rows(out)
    assert summary["clips_written"] == len(rows) == 2
    text_encoder = load_pretrained("sd15-text-encoder", CLIPTextModel, models_dir=tiny_models)
    hidden = text_encoder.config.hidden_size
    for row in rows:
        assert row["latents"].shape == (4, 4, 32 // 8, 32 // 8) and row["latents"].dtype == np.float16
        assert row["text_embeds"].shape == (77, hidden) and row["text_embeds"].dtype == np.float16
        assert np.isfinite(row["latents"]).all() and row["latents"].std() > 0
    # the cached embedding is the text encoder's output for the caption
    from transformers import CLIPTokenizer

    tok = load_pretrained("sd15-tokenizer", CLIPTokenizer, models_dir=tiny_models)
    ids = tok([rows[0]["caption"]], padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt").input_ids
    with torch.no_grad():
        want = text_encoder(ids)[0][0].numpy()
    np.testing.assert_allclose(rows[0]["text_embeds"].astype(np.float32), want, atol=2e-3, rtol=2e-3)
