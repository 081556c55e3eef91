"""Data pipeline pieces without Ray: sampling, cropping, timeouts, manifests, synthetic clips, CLI errors."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from data_pipeline.clips import (REASON_TIMEOUT, REASON_TOO_SHORT, ClipRejected, ClipSpec, call_with_timeout,
                                 center_crop, make_clip, resize_size, sample_indices)
from data_pipeline.manifest import ManifestError, read_manifest


def test_indices_are_start_plus_stride_and_repeat_for_a_seed():
    spec = ClipSpec("a.mp4", "c", frames=8, stride=4, seed=3)
    idx = sample_indices(100, spec)
    assert idx.tolist() == [idx[0] + 4 * k for k in range(8)]
    assert 0 <= idx[0] and idx[-1] < 100
    assert np.array_equal(idx, sample_indices(100, spec))
    starts = {int(sample_indices(100, ClipSpec("a.mp4", "c", seed=s))[0]) for s in range(20)}
    assert len(starts) > 5  # the seed really moves the start


def test_several_clips_per_video_spread_over_it_and_have_distinct_ids():
    specs = [ClipSpec("v.mp4", "c", clip=k, clips_per_video=4, frames=4, stride=2) for k in range(4)]
    starts = [int(sample_indices(200, s)[0]) for s in specs]
    n_starts = 200 - 7 + 1
    for k, start in enumerate(starts):
        assert k * n_starts // 4 <= start < (k + 1) * n_starts // 4
    assert len({s.clip_id for s in specs}) == 4
    assert specs[0].clip_id == ClipSpec("v.mp4", "other caption", clip=0, clips_per_video=4, frames=4,
                                        stride=2).clip_id


def test_too_short_video_is_rejected_with_the_numbers():
    with pytest.raises(ClipRejected) as info:
        sample_indices(20, ClipSpec("v.mp4", "c", frames=8, stride=4))
    assert info.value.reason == REASON_TOO_SHORT and "29" in info.value.detail
    assert sample_indices(29, ClipSpec("v.mp4", "c", frames=8, stride=4)).tolist()[-1] == 28


def test_resize_short_side_then_centre_crop():
    assert resize_size(320, 240, 256) == (341, 256)
    assert resize_size(180, 320, 64) == (64, 114)
    frames = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    out = center_crop(frames, 4)
    assert out.shape == (2, 4, 4, 3) and np.array_equal(out, frames[:, :, 1:5])


def test_decode_timeout_rejects_instead_of_hanging():
    t0 = time.perf_counter()
    with pytest.raises(ClipRejected) as info:
        call_with_timeout(lambda: time.sleep(3), 0.2)
    assert info.value.reason == REASON_TIMEOUT and time.perf_counter() - t0 < 1.5
    assert call_with_timeout(lambda: 7, 1.0) == 7


def test_manifest_formats_and_rejected_rows(tmp_path):
    (tmp_path / "m.csv").write_text("video,caption,extra\nclips/a.mp4,mist over hills,1\n,no path,2\n"
                                    "/abs/b.mp4,  ,3\n")
    entries, rejects = read_manifest(str(tmp_path / "m.csv"))
    assert [e.video for e in entries] == [str(tmp_path / "clips/a.mp4")]
    assert {(r.reason, r.line) for r in rejects} == {("missing-path", 3), ("empty-caption", 4)}

    (tmp_path / "m.jsonl").write_text(json.dumps({"video": "s3://bucket/x.mp4", "caption": "rain"}) + "\n")
    entries, _ = read_manifest(str(tmp_path / "m.jsonl"))
    assert entries[0].video == "s3://bucket/x.mp4"

    (tmp_path / "webvid.csv").write_text("videoid,name,page_dir\n1234,a boat on the river,page_07\n")
    entries, _ = read_manifest(str(tmp_path / "webvid.csv"), video_root="/data/clvhd")
    assert (entries[0].video, entries[0].caption) == ("/data/clvhd/page_07/1234.mp4", "a boat on the river")


def test_manifest_mistakes_say_what_is_wrong(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(str(tmp_path / "nope.csv"))
    (tmp_path / "bad.csv").write_text("path,text\na.mp4,hi\n")
    with pytest.raises(ManifestError, match="needs 'video' and 'caption'"):
        read_manifest(str(tmp_path / "bad.csv"))


def test_cli_prints_one_line_for_user_mistakes(tmp_path, capsys):
    from data_pipeline.clvhd import main

    assert main(["--manifest", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("clvhd: error:") and "missing.csv" in err[0]
    (tmp_path / "bad.csv").write_text("file,label\na.mp4,hi\n")
    assert main(["--manifest", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o")]) == 1
    assert "needs 'video' and 'caption'" in capsys.readouterr().err


def test_synthetic_clips_move_and_captions_describe_them(tmp_path):
    from data_pipeline.synthetic import ClipPlan, generate, render_clip

    plan = ClipPlan("x.mp4", 64, 48, 12, 12.0, ("mist", "pan"), seed=1, direction=1)
    frames = np.stack(list(render_clip(plan)))
    assert frames.shape == (12, 48, 64, 3) and frames.dtype == np.uint8
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 2  # real motion
    assert "mist drifting to the right" in plan.caption and "panning right" in plan.caption

    manifest = generate(tmp_path, clips=4, seed=5, min_frames=12, max_frames=16, scale=0.25)
    entries, rejects = read_manifest(str(manifest))
    assert len(entries) == 4 and not rejects
    spec = ClipSpec(entries[0].video, entries[0].caption, frames=4, stride=3, size=16)
    clip = make_clip(spec)
    assert clip["frames"].shape == (4, 16, 16, 3)
    assert clip["indices"].tolist() == [clip["indices"][0] + 3 * k for k in range(4)]


def test_units_are_fixed_by_the_plan_and_survive_the_trip_to_a_task():
    from data_pipeline.units import plan_units, sampling_of, units_from_table, units_table

    specs = [ClipSpec(f"/v/{i}.mp4", f"c{i}", clip=k, clips_per_video=2, frames=4, stride=2, size=32)
             for i in range(5) for k in range(2)]
    units = plan_units(specs, 4)
    assert [len(u.specs) for u in units] == [4, 4, 2] and [u.index for u in units] == [0, 1, 2]
    assert units[1].name.startswith("part-00001-") and units[1].name == plan_units(specs, 4)[1].name
    # a unit's name changes with its clips (the manifest grew), so a superseded shard is recognised
    assert plan_units(specs[:9], 4)[2].name != units[2].name and plan_units(specs[:9], 4)[1].name == units[1].name
    back = units_from_table(units_table(units[1:]), sampling_of(specs[0]))
    assert back == units[1:]


def test_layout_is_derived_from_the_cluster():
    from data_pipeline.layout import WAVES, derive_layout, split_evenly

    two = derive_layout([2.0], units=63)  # this machine, 1,000 clips in units of 16
    assert (two.cpus_per_task, two.threads, two.slots, two.tasks) == (1.0, 1, 2, 2 * WAVES)
    big = derive_layout([2.0, 16.0, 16.0], units=500)  # more nodes, more slots, more tasks
    assert (big.slots, big.tasks, big.cluster_cpus) == (34, 34 * WAVES, 34.0)
    few = derive_layout([16.0], units=3)  # fewer units than cores: spare cores decode in threads
    assert (few.cpus_per_task, few.threads, few.slots, few.tasks) == (5.0, 5, 3, 3)
    assert derive_layout([2.0], units=63, encode=True).cpus_per_task == 0.5  # room for the encoder actor
    assert derive_layout([2.0], units=63, encode=True).tasks == 63  # one unit per block with --encode
    assert derive_layout([0.0], units=63).tasks == WAVES  # autoscaling, no CPU node up yet: still runs
    mine = derive_layout([2.0], units=63, cpus_per_task=0.5, threads=2, tasks=5)
    assert (mine.cpus_per_task, mine.threads, mine.slots, mine.tasks) == (0.5, 2, 4, 5)
    parts = split_evenly(63, 8)
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1 and len(parts) == 8
    assert [i for p in parts for i in p] == list(range(63))
