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
from data_pipeline.clvhd import run
from data_pipeline.config import Config, PipelineError
from data_pipeline.shards import read_shards, row_to_arrays, shard_files
from data_pipeline.synthetic import ClipPlan, generate, render_clip

pytestmark = pytest.mark.ray

SETTINGS = dict(frames=4, stride=3, size=32, seed=7)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clvhd-synthetic")
    return generate(root, clips=5, seed=11, min_frames=14, max_frames=30, scale=0.25)


def _rows(out: Path) -> list[dict]:
    return [row_to_arrays(r) for f in shard_files(str(out)) for r in pq.read_table(f).to_pylist()]


def test_synthetic_manifest_to_shards(ray_session, synthetic, tmp_path):
    out = tmp_path / "out"
    summary = run(Config(manifest=str(synthetic), out=str(out), clips_per_video=2, rows_per_shard=3, **SETTINGS))
    rows = _rows(out)
    assert summary["clips_written"] == len(rows) == 10 and summary["rejected"] == 0
    # one shard per unit of 3 planned clips, named in plan order; no temporary file left
    sizes = [pq.read_metadata(f).num_rows for f in shard_files(str(out))]
    assert sizes == [3, 3, 3, 1] and summary["shards"] == summary["units"] == 4
    # and the rows, read in shard name order, are the clips in manifest order (clip 0, clip 1 of each video)
    videos = [row["video"] for row in csv.DictReader(open(synthetic))]
    assert [(Path(r["video"]).name, r["clip_id"]) for r in rows] == [
        (Path(v).name, ClipSpec(str(synthetic.parent / v), "", clip=k, clips_per_video=2, **SETTINGS).clip_id)
        for v in videos for k in range(2)]
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
    from inkwalk.video_writer import write_video

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
    summary = run(Config(manifest=str(manifest), out=str(out), max_rejected=1.0, **SETTINGS))
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    by_video = {(Path(r["video"]).name, r["caption"]): r["reason"] for r in rejects}
    assert by_video == {("corrupt.mp4", "corrupt"): "corrupt", ("empty.mp4", "zero bytes"): "empty-file",
                        ("missing.mp4", "missing"): "missing-file", ("short.mp4", "too short"): "too-short",
                        (Path(good[0]["video"]).name, ""): "empty-caption",
                        (Path(good[1]["video"]).name, "listed twice"): "duplicate"}
    assert summary["rejects_by_reason"] == {reason: 1 for reason in by_video.values()}
    assert sorted(r["caption"] for r in _rows(out)) == sorted(row["caption"] for row in good)


def _shard_bytes(out: Path) -> dict[str, bytes]:
    return {Path(f).name: Path(f).read_bytes() for f in shard_files(str(out))}


def test_resume_gives_the_same_shards_byte_for_byte(ray_session, synthetic, tmp_path):
    settings = dict(rows_per_shard=2, **SETTINGS)
    uninterrupted = tmp_path / "uninterrupted"
    assert run(Config(manifest=str(synthetic), out=str(uninterrupted), **settings))["clips_written"] == 5

    # history of the resumed folder: a run on the first 3 videos (units [v0 v1] [v2]), killed while
    # writing a shard (its temporary file is left), then the full manifest on another layout
    lines = synthetic.read_text().splitlines()
    partial = synthetic.parent / "first-three.csv"
    partial.write_text("\n".join(lines[:4]) + "\n")
    out = tmp_path / "resumed"
    assert run(Config(manifest=str(partial), out=str(out), **settings))["clips_written"] == 3
    kept = {f: os.path.getmtime(f) for f in shard_files(str(out)) if Path(f).name.startswith("part-00000-")}
    (out / "shards" / "part-00001-0123456789ab.parquet.tmp").write_bytes(b"half a shard from a killed run")
    resumed = run(Config(manifest=str(synthetic), out=str(out), tasks=1, decode_threads=2, **settings))
    assert (resumed["clips_already_written"], resumed["clips_written"], resumed["clips_total"],
            resumed["shards_superseded"]) == (2, 3, 5, 1)
    assert all(os.path.getmtime(f) == t for f, t in kept.items()) and len(kept) == 1  # unit 0 was not redone
    assert not list((out / "shards").glob("*.tmp"))
    # the same files, the same bytes, whatever happened before
    assert _shard_bytes(out) == _shard_bytes(uninterrupted) and len(_shard_bytes(out)) == 3

    again = run(Config(manifest=str(synthetic), out=str(out), **settings))
    assert again["clips_written"] == 0 and again["clips_total"] == 5 and again["layout"] is None
    with pytest.raises(PipelineError, match="other settings"):
        run(Config(manifest=str(synthetic), out=str(out), **{**settings, "stride": 2}))
    with pytest.raises(PipelineError, match="does not list"):  # never deletes clips the manifest dropped
        run(Config(manifest=str(partial), out=str(out), **settings))


def test_encode_stage_caches_latents_and_text_embeddings(ray_session, synthetic, tiny_models, tmp_path):
    import torch
    from transformers import CLIPTextModel

    from inkwalk.models import load_pretrained

    two = synthetic.parent / "two.csv"
    two.write_text("\n".join(synthetic.read_text().splitlines()[:3]) + "\n")
    out = tmp_path / "out"
    summary = run(Config(manifest=str(two), out=str(out), encode=True, models=str(tiny_models),
                         **SETTINGS))
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


def test_relative_paths_are_resolved_on_the_driver(ray_session, synthetic, tmp_path, monkeypatch):
    """The workers' working folder is not the driver's: relative --manifest and --out still work."""
    monkeypatch.chdir(tmp_path)
    os.symlink(synthetic.parent, tmp_path / "data")
    summary = run(Config(manifest="data/manifest.csv", out="out", **SETTINGS))
    assert summary["clips_written"] == 5 and summary["rejected"] == 0
    assert summary["manifest"] == str(tmp_path / "data" / "manifest.csv")
    assert len(_rows(tmp_path / "out")) == 5 and all(Path(r["video"]).is_absolute() for r in _rows(tmp_path / "out"))


def test_too_many_rejects_exit_non_zero_with_a_summary(ray_session, synthetic, tmp_path, capsys):
    from data_pipeline.clvhd import main

    good = next(csv.DictReader(open(synthetic)))["video"]
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"video,caption\n{synthetic.parent / good},fine\nnowhere/a.mp4,lost\nnowhere/b.mp4,lost\n")
    flags = ["--frames", "4", "--stride", "3", "--size", "32"]
    assert main(["--manifest", str(manifest), "--out", str(tmp_path / "o1"), *flags]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["clips_written"] == 1 and json.loads(out)["rejects_by_reason"] == {"missing-file": 2}
    assert err.count("\n") == 1 and "2 of 3 clips" in err and "missing-file 2" in err and "nowhere/a.mp4" in err
    assert json.loads((tmp_path / "o1" / "summary.json").read_text())["rejected"] == 2
    assert main(["--manifest", str(manifest), "--out", str(tmp_path / "o1"), "--max-rejected", "0.7", *flags]) == 0
    capsys.readouterr()

    lost = tmp_path / "lost.csv"
    lost.write_text("video,caption\nnowhere/a.mp4,lost\n")
    assert main(["--manifest", str(lost), "--out", str(tmp_path / "o2"), "--max-rejected", "1", *flags]) == 1
    assert "every clip was rejected: missing-file 1" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["uri", "subtree"])
def test_shards_at_a_uri_are_read_by_the_training_loop(ray_session, synthetic, tmp_path, where):
    import pyarrow.fs as pafs
    import torch

    from training.data import columns_for, shard_batches

    if where == "uri":
        out, fs = f"file://{tmp_path}/clvhd", None
    else:  # any pyarrow filesystem object: here a folder of the local one seen as a root
        out, fs = "runs/clvhd", pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    summary = run(Config(manifest=str(synthetic), out=out, filesystem=fs, rows_per_shard=2, **SETTINGS))
    assert summary["clips_written"] == 5
    folder = tmp_path / ("clvhd" if where == "uri" else "runs/clvhd")
    assert len(list((folder / "shards").glob("*.parquet"))) == 3
    ds = read_shards(out, columns=columns_for("frames"), filesystem=fs)
    batches = shard_batches(ds.iterator(), "frames", batch_size=5, device=torch.device("cpu"))
    _, _, batch = next(batches)
    assert tuple(batch["frames"].shape) == (5, 4, 32, 32, 3) and batch["frames"].dtype == torch.uint8
    got = sorted((c, f.numpy().tobytes()) for c, f in zip(batch["caption"], batch["frames"]))
    assert got == sorted((r["caption"], r["frames"].tobytes()) for r in _rows(folder))
