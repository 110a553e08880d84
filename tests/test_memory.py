"""Bounded memory: features larger than ``resident_limit_gb`` are streamed batch by batch.

A 100,000 x 512 float16 memory map (98 MB; 195 MB as float32) is purified for one epoch with
``resident_limit_gb`` set tiny, in a subprocess that samples its anonymous resident memory
(``RssAnon`` of ``/proc/self/status``, every 5 ms) after the imports and during the run.  The
peak growth must stay well below the float32 size of the features: a run that held them in RAM
would need at least that much.  Anonymous memory, not ``ru_maxrss``: the pages of the memory
map that the reads touch are file-backed and count in the RSS (up to the file's 98 MB, more or
less depending on what the kernel has reclaimed), but they are the page cache's, not a copy.  The label
state (rows x views x classes, three copies) is inherent to the method; two classes keep it
small so the features dominate.

``graph_k = 0``: the default's kNN-graph step (dmlp/decision.py ``BayesDecision.graph_evidence``) gathers all
feature rows into RAM by design, so it is switched off here; this test guards the streamed
IPC/EAC path (FeatureStore + file reads), which must never hold the features whole.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cli_helpers import ROOT

N, D = 100_000, 512

MEASURE = """
import sys, threading, time
sys.path.insert(0, {root!r})
import torch
import dmlp.run, dmlp.purify                                    # imports are not the run's memory
torch.optim.Adam([torch.zeros(1, requires_grad=True)]).step()   # torch's lazy imports, not ours
import scipy.stats

def anon_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))

before, peak, done = anon_kb(), [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], anon_kb())
        time.sleep(0.005)
thread = threading.Thread(target=sample, daemon=True)
thread.start()
rc = dmlp.run.main({argv!r})
done.set(); thread.join()
print("RSS_KB", before, max(peak[0], anon_kb()))
sys.exit(rc)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/status")
def test_streamed_features_keep_rss_bounded(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    X = np.lib.format.open_memmap(data / "trainfeatures.npy", mode="w+", dtype=np.float16, shape=(N, D))
    for start in range(0, N, 10_000):
        X[start:start + 10_000] = rng.standard_normal((10_000, D)).astype(np.float16)
    X.flush()
    del X
    labels = rng.integers(0, 2, N)
    np.save(data / "trainlabels.npy", labels)
    np.save(data / "correctlabels.npy", labels)
    config = tmp_path / "stream.toml"
    config.write_text('inherit = "cifar10_sym20"\nname = "stream"\nepochs = 1\nn_classes = 2\n'
                      'resident_limit_gb = 0.01\ngraph_k = 0\n')
    out = tmp_path / "out"
    argv = ["--config", str(config), "--data", str(data), "--out", str(out), "--quiet"]
    proc = subprocess.run([sys.executable, "-c", MEASURE.format(root=str(ROOT), argv=argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    before, after = map(int, proc.stdout.split("RSS_KB")[1].split())
    growth_mb = (after - before) / 1024
    float32_mb = N * D * 4 / 2 ** 20
    summary = json.loads((out / "summary.json").read_text())
    assert summary["features_in_ram"] is False
    assert np.load(out / "purified_labels.npy").shape == (N,)
    assert growth_mb < 0.8 * float32_mb, (
        f"peak anonymous RSS grew by {growth_mb:.0f} MB streaming {float32_mb:.0f} MB of float32 features")
