"""The batch driver's inputs without Ray: collections from folders, manifests and URIs."""

from __future__ import annotations

import json

import pytest

from inkwalk.errors import InkwalkError
from inkwalk.paintings import collection
from inkwalk.store import Store
from inkwalk.video import save_image
from services.collection import collection_sources, copy_inputs


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "art"
    for name, image in zip(("b.png", "a.jpg", "c.PNG"), collection(3, size=(32, 24))):
        save_image(root / name, image)
    (root / "readme.txt").write_text("not a painting")
    return root


def test_a_folder_is_its_images_sorted_by_name_local_or_uri(folder):
    local = collection_sources(folder)
    assert [p.rsplit("/", 1)[-1] for p in local] == ["a.jpg", "b.png", "c.PNG"]
    uri = collection_sources(folder.as_uri())
    assert uri == [f"file://{p}" for p in local]


def test_a_manifest_keeps_its_order_and_resolves_against_its_own_folder(folder, tmp_path):
    (folder / "walk.txt").write_text("# the order of the walk\nc.PNG\n\na.jpg\n" + str(folder / "b.png") + "\n")
    assert [p.rsplit("/", 1)[-1] for p in collection_sources(folder / "walk.txt")] == ["c.PNG", "a.jpg", "b.png"]
    (folder / "walk.json").write_text(json.dumps(["b.png", "a.jpg"]))
    got = collection_sources((folder / "walk.json").as_uri())
    assert got == [f"file://{folder}/b.png", f"file://{folder}/a.jpg"]
    for text, phrase in [("{}", "must be a list"), ("[1, 2]", "must be a list"), ("not json", "not a JSON list")]:
        (folder / "bad.json").write_text(text)
        with pytest.raises(InkwalkError, match=phrase):
            collection_sources(folder / "bad.json")
    with pytest.raises(InkwalkError, match="at least 2 paintings"):
        collection_sources(tmp_path)
    with pytest.raises(InkwalkError, match="no such folder"):
        collection_sources(tmp_path / "nowhere")


def test_inputs_are_copied_once_under_their_content_hash(folder, tmp_path):
    store = Store(tmp_path / "store")
    sources = collection_sources(folder)
    first = copy_inputs(store, sources + sources[:1])
    assert first[0]["sha256"] == first[3]["sha256"] and first[0]["path"] == first[3]["path"]
    assert len({i["path"] for i in first}) == 3
    assert store.get_bytes(first[1]["path"]) == (folder / "b.png").read_bytes()
    with pytest.raises(InkwalkError, match="cannot read the painting"):
        copy_inputs(store, [str(folder / "gone.png")])
