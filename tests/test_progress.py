"""Progress bars written to a file (stderr redirected): whole lines, a few per bar, no redraws."""
from __future__ import annotations

import io
import sys

from dmlp.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_file_gets_whole_lines_not_redraws(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    bar = progress_bar(total=1000, desc="DMLP", unit="epoch")
    for i in range(1000):
        bar.update()
        bar.set_postfix(label_acc=f"{i / 1000:.4f}")
    bar.close()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 3, lines             # the start, the end, at most one timed redraw between
    assert lines[0].startswith("DMLP:   0%") and lines[-1].startswith("DMLP: 100%")
    assert "1000/1000" in lines[-1] and "label_acc=0.9990" in lines[-1]


def test_a_terminal_gets_the_live_bar(monkeypatch):
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    bar = progress_bar(total=3, desc="DMLP", unit="epoch")
    for _ in range(3):
        bar.update()
    bar.close()
    assert "\r" in term.getvalue()


def test_disabled_bar_writes_nothing(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    for _ in progress_bar(range(5), desc="x", unit="step", enabled=False):
        pass
    assert log.getvalue() == ""
