"""How the benchmark measures: peak memory, the purifier's phases, a GPU warm-up.

Memory (:class:`PeakMemory`): *peak RSS increase* -- the process's resident set size is
sampled every 10 ms by a thread (``/proc/self/statm``) while the method runs; the figure is the
highest sample minus the RSS just before the method started (MB).  ``ru_maxrss`` is monotone over
the process and would read 0 for every method after the largest one; a run in a subprocess
(:func:`benchmarks.scale.run_dmlp_cli`) reports the child's own ``ru_maxrss``, which is exact.
On a GPU the peak allocated device memory is recorded as well.

Phases (:data:`PHASES`): the keys of ``PurifyResult.timings`` (and ``summary.json``'s
``timings``), which add up to ``total``.
"""
from __future__ import annotations

import os
import resource
import threading
from typing import Dict

import numpy as np

#: ``PurifyResult.timings`` keys, in the order a run goes through them; they add up to "total".
PHASES = ("setup", "read", "ipc", "eac", "report", "checkpoint", "final")


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Context manager: peak RSS increase (MB) over the RSS at entry, sampled by a thread.

    Attributes after the block: ``peak_mb``; ``gpu_peak_mb`` (peak allocated CUDA memory) on a
    CUDA device, else None.
    """

    def __init__(self, interval: float = 0.01, device: str = "cpu"):
        self.interval, self.device = interval, device
        self.peak_mb = float("nan")
        self.gpu_peak_mb = None

    def __enter__(self):
        self._base = self._peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if self.device.startswith("cuda"):
            import torch
            torch.cuda.reset_peak_memory_stats()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, _rss_bytes())
        self.peak_mb = (self._peak - self._base) / 2 ** 20
        if self.device.startswith("cuda"):
            import torch
            self.gpu_peak_mb = torch.cuda.max_memory_allocated() / 2 ** 20
        return False


def phase_seconds(timings: Dict[str, float]) -> Dict[str, float]:
    """``{"setup_s": ..., ..., "final_s": ..., "total_s": ...}`` from a run's timings (0 where a
    phase is absent, e.g. in a ``summary.json`` of an older version)."""
    out = {f"{p}_s": float(timings.get(p, 0.0)) for p in PHASES}
    out["total_s"] = float(timings["total"])
    return out


def warm_up(device: str, d: int, n_classes: int) -> None:
    """On a GPU, one tiny unrecorded run first, so CUDA start-up is not billed to the first row."""
    if device == "cpu":
        return
    from dmlp.config import load_config
    from dmlp.data import Dataset
    from dmlp.pipeline import purify_dataset
    n = max(2000, 3 * n_classes)
    X = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    y = np.arange(n) % n_classes
    data = Dataset.from_arrays(X, y, true_labels=y, n_classes=n_classes, name="warm-up")
    purify_dataset(data, load_config("default", epochs=1, batch_size=1000),
                   meta_index=np.arange(max(200, n_classes)), device=device)


def process_seconds() -> float:
    """Wall seconds since this process started (``/proc``; NaN where it cannot be read)."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")
