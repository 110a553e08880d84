"""Bounded memory: features larger than ``resident_limit_gb`` are streamed batch by batch.

A 100,000 x 512 float16 memory map (98 MB; 195 MB as float32) is purified for one epoch with
``resident_limit_gb`` set tiny, in a subprocess that samples its anonymous resident memory
(``RssAnon`` of ``/proc/self/status``, every 5 ms) after the imports and during the run.  The
peak growth is compared with that of the same run holding the features in RAM: streaming must
save at least a quarter of their float32 size.  Anonymous memory, not ``ru_maxrss``: the pages
of the memory map that the reads touch are file-backed and count in the RSS (up to the file's
98 MB, more or less depending on what the kernel has reclaimed), but they are the page
cache's, not a copy.  The label
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
    growth = {}
    for name, limit in (("streamed", 0.01), ("in RAM", 10)):
        config = tmp_path / f"{limit}.toml"
        config.write_text('inherit = "cifar10_sym20"\nname = "stream"\nepochs = 1\nn_classes = 2\n'
                          f'resident_limit_gb = {limit}\ngraph_k = 0\n')
        out = tmp_path / f"out{limit}"
        argv = ["--config", str(config), "--data", str(data), "--out", str(out), "--quiet"]
        proc = subprocess.run([sys.executable, "-c", MEASURE.format(root=str(ROOT), argv=argv)], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        before, after = map(int, proc.stdout.split("RSS_KB")[1].split())
        growth[name] = (after - before) / 1024
        summary = json.loads((out / "summary.json").read_text())
        assert summary["features_in_ram"] is (name == "in RAM")
        assert np.load(out / "purified_labels.npy").shape == (N,)
    float32_mb = N * D * 4 / 2 ** 20
    # the streamed run's peak varies from run to run (127-259 MB measured; a transient of unknown
    # origin is caught by some samplings), so it is compared with the same run holding the
    # features, and must save at least a quarter of their size (measured: 74-84 MB saved in runs with the transient)
    assert growth["streamed"] < growth["in RAM"] - 0.25 * float32_mb, (
        f"peak anonymous RSS grew by {growth['streamed']:.0f} MB streamed and {growth['in RAM']:.0f} MB "
        f"with the {float32_mb:.0f} MB of float32 features in RAM")
