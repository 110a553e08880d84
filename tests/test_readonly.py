"""Inputs are only read; outputs are replaced atomically (a kill leaves the old file or the new)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cli_helpers import ROOT, make_data, run_dmlp, snapshot
from dmlp import io
from dmlp.data import load_dataset


def _chmod_tree(folder, file_mode, dir_mode):
    for p in folder.rglob("*"):
        p.chmod(file_mode if p.is_file() else dir_mode)
    folder.chmod(dir_mode)


def test_inputs_unchanged_by_a_run(tmp_path):
    """Bytes and mtimes of every input (data folder, --meta-index file, --config file) are the
    same after a run; the input folders are write-protected (effective when not run as root)."""
    data = make_data(tmp_path / "inputs" / "data")
    inputs = data.parent
    true = np.load(data / "correctlabels.npy")
    idx = np.concatenate([np.nonzero(true == c)[0][:8] for c in range(10)])
    np.save(inputs / "meta.npy", idx)
    before = snapshot(inputs)
    _chmod_tree(inputs, 0o444, 0o555)
    try:
        out = tmp_path / "out"
        proc = run_dmlp("--data", data, "--config", inputs / "base.toml", "--meta-index", inputs / "meta.npy",
                        "--epochs", "2", "--quiet", "--out", out)
        assert proc.returncode == 0, proc.stderr
    finally:
        _chmod_tree(inputs, 0o644, 0o755)
    assert snapshot(inputs) == before
    assert np.array_equal(np.load(out / "meta_indices.npy"), np.sort(idx))


def test_features_are_opened_read_only(tmp_path):
    data = make_data(tmp_path / "data")
    ds = load_dataset(data, 10)
    assert isinstance(ds.train_features, np.memmap) and ds.train_features.mode == "r"
    assert not ds.train_features.flags.writeable
    with pytest.raises(ValueError):
        ds.train_features[0, 0] = 1.0


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "labels.npy"
    io.save_npy(path, np.arange(10))
    before = path.read_bytes()

    def broken_save(fh, array, allow_pickle=False):
        fh.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError):
        io.save_npy(path, np.arange(20))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["labels.npy"]       # no temp file left


WRITER = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from dmlp import io
a, b = np.zeros(2_000_000), np.ones(2_000_000)
print("ready", flush=True)
while True:
    io.save_npy({path!r}, a)
    io.save_npy({path!r}, b)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill9_during_writes_leaves_a_whole_file(tmp_path):
    """A process rewriting a 16 MB .npy in a loop is killed at arbitrary moments: the file on
    disk is always one of the two complete versions, never a mix or a truncation."""
    path = tmp_path / "x.npy"
    rng = np.random.default_rng(0)
    for trial in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), path=str(path))],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05 + 0.3 * rng.random())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if not path.exists():
            continue                                     # killed before the first rename
        x = np.load(path)
        assert x.shape == (2_000_000,) and (np.all(x == 0) or np.all(x == 1)), trial
