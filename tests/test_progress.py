"""Progress is never silent: lines with an ETA when stderr is not a terminal, an ETA on the bar."""

from __future__ import annotations

import io
import re
import time

import pytest

import inkwalk.progress as progress_module
from inkwalk.progress import progress


class Log:
    """What was written to stderr, which pytest's capture makes a non-terminal like a log file."""

    def __init__(self, capsys):
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def log(monkeypatch, capsys):
    """stderr as a log file (not a terminal), with lines every 50 ms."""
    monkeypatch.setattr(progress_module, "LOG_INTERVAL_S", 0.05)
    monkeypatch.delenv("INKWALK_NO_PROGRESS", raising=False)
    return Log(capsys)


def test_long_work_prints_lines_with_count_percentage_and_eta(log):
    with progress(total=10, desc="upscale", unit="frame") as bar:
        for _ in range(10):
            time.sleep(0.02)
            bar.update(1)
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and 2 <= len(lines) <= 6, lines
    for line in lines:
        assert re.fullmatch(r"upscale: \d+/10 frame \(\d+%\), 00:00 elapsed, ETA \d\d:\d\d", line), line
    assert lines[-1].startswith("upscale: 10/10 frame (100%)")


def test_short_work_prints_nothing(log):
    for _ in progress(range(100), desc="quick"):
        pass
    assert log.getvalue() == ""


def test_an_interrupted_loop_does_not_claim_to_have_finished(log):
    with pytest.raises(KeyboardInterrupt), progress(total=10, desc="walk", unit="piece") as bar:
        for i in range(10):
            time.sleep(0.02)
            bar.update(1)
            if i == 5:
                raise KeyboardInterrupt
    text = log.getvalue()
    assert "10/10" not in text and "walk: " in text


def test_inkwalk_no_progress_hides_the_lines(log, monkeypatch):
    monkeypatch.setenv("INKWALK_NO_PROGRESS", "1")
    for _ in progress(range(5), desc="hidden"):
        time.sleep(0.02)
    assert log.getvalue() == ""


def test_the_terminal_bar_shows_the_eta(monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.delenv("INKWALK_NO_PROGRESS", raising=False)
    with capsys.disabled():
        monkeypatch.setattr("sys.stderr", terminal)
        with progress(total=4, desc="pieces", unit="piece") as bar:
            bar.update(2)
            bar.refresh()
        monkeypatch.undo()
    assert re.search(r"2/4 \[00:00, ETA \d\d:\d\d", terminal.getvalue()), terminal.getvalue()
