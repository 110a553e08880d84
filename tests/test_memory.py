"""Bounded memory: features larger than ``resident_limit_gb`` are streamed batch by batch.

A 100,000 x 512 float16 memory map (98 MB; 195 MB as float32) is purified for one epoch with
``resident_limit_gb`` set tiny, in a subprocess that records its peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) after the imports and again at the end.  The growth must
stay well below the float32 size of the features: a run that held them in RAM would need at
least that much (measured: ~300 MB with the features in RAM, ~110 MB streamed).  The label
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
import resource, sys
sys.path.insert(0, {root!r})
import torch
import dmlp.run, dmlp.purify                                    # imports are not the run's memory
torch.optim.Adam([torch.zeros(1, requires_grad=True)]).step()   # torch's lazy imports, not ours
import scipy.stats
scale = 1 if sys.platform.startswith("linux") else 1 / 1024     # ru_maxrss: KB on Linux
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
rc = dmlp.run.main({argv!r})
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
print("RSS_KB", int(before), int(after))
sys.exit(rc)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="resource module")
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
        f"peak RSS grew by {growth_mb:.0f} MB streaming {float32_mb:.0f} MB of float32 features")
