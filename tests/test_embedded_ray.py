"""The embedded Ray's session folder, without starting Ray: where it goes, when it is removed."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from inkwalk.cli import Terminated
from inkwalk.errors import InkwalkError
from services.embedded_ray import FALLBACK_PARENT, session_folder, session_parent


@pytest.fixture
def short_tmp():
    """A folder short enough for Ray's sockets (pytest's tmp_path is not, by a few bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="iwt", dir="/tmp"))
    yield folder
    shutil.rmtree(folder)


def test_the_folder_goes_in_ray_tmpdir_unless_ray_sockets_would_not_fit(short_tmp, monkeypatch, caplog):
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    assert session_parent() == FALLBACK_PARENT
    monkeypatch.setenv("RAY_TMPDIR", str(short_tmp))
    assert session_parent() == str(short_tmp)
    assert caplog.text == ""
    # AF_UNIX allows 107 bytes; Ray adds 64 (its session folder, sockets/plasma_store), we add 11
    for length, fits in ((107 - 64 - 11, True), (107 - 64 - 11 + 1, False)):
        long = "/tmp/" + "d" * (length - len("/tmp/"))
        monkeypatch.setenv("RAY_TMPDIR", long)
        assert (session_parent() == long) is fits
    assert "too long for Ray's socket paths" in caplog.text


def test_success_removes_the_folder_and_an_unexpected_failure_keeps_it(short_tmp, monkeypatch, capsys):
    monkeypatch.setenv("RAY_TMPDIR", str(short_tmp))
    with session_folder() as folder:
        (folder / "session_x" / "logs").mkdir(parents=True)
        (folder / "session_x" / "logs" / "raylet.out").write_text("ready")
        assert folder.parent == short_tmp
    assert list(short_tmp.iterdir()) == []
    for expected in (InkwalkError("no such folder"), KeyboardInterrupt(), Terminated()):  # nothing to debug
        with pytest.raises(type(expected)), session_folder():
            raise expected
    assert list(short_tmp.iterdir()) == [] and capsys.readouterr().err == ""
    with pytest.raises(RuntimeError), session_folder() as folder:
        raise RuntimeError("a replica died")
    assert folder.is_dir() and capsys.readouterr().err.strip() == f"Ray's session folder, with its logs, is kept in {folder}"
