"""The benchmark behind ``scripts/benchmark.py``: quality, speed and scale tables.

Three parts, each a function returning table rows (dicts) that :func:`main` formats as Markdown
(printed *and* written to ``docs/benchmarks.md``, the same strings) and CSV:

* **quality** (:func:`run_quality`) -- on the shared CIFAR-10 features, per noise setting (DivideMix
  protocol, noise seed ``--seed``) and one fixed clean meta split (``draw_meta_indices(correct,
  1000, seed=0)``): the label accuracy on the other rows, the number of changed labels, the test
  accuracy of a linear probe trained on the labels, seconds and peak memory of every baseline of
  :data:`dmlp.baselines.ALL_BASELINES`, DMLP default (over several config seeds), DMLP paper,
  DMLP ``--meta auto`` and one ablation per entry of :data:`ABLATIONS`;
* **speed** (:func:`run_speed`) -- the CIFAR-10 full run split into setup / IPC / EAC / final;
* **scale** (:func:`run_scale`) -- a synthetic Clothing1M-shaped data set (1M x 2048 float16,
  14 classes, ~38 % class-dependent noise, separate clean meta set) run through ``DMLP.py`` in a
  subprocess (wall time, peak RSS of that process, accuracy), and per-epoch cost against N and d
  with the fitted log-log slopes.

Memory column: *peak RSS increase* -- the process's resident set size is sampled every 10 ms by
a thread (``/proc/self/statm``) while the method runs; the table gives the highest sample minus
the RSS just before the method started (MB).  ``ru_maxrss`` is monotone over the process and
would read 0 for every method after the largest one; the subprocess runs of the scale part
report the child's own ``ru_maxrss`` (``os.wait4``), which is exact.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from dmlp.errors import InputError
from dmlp.cli import ArgumentParser

REPO_ROOT = Path(__file__).resolve().parent.parent   # benchmarks/ sits at the repository root
DEFAULT_DATA = "../shared/data/cifar10-effnet-lite2"          # relative to the repo root
DEFAULT_SCALE_DIR = "/tmp/dmlp_clothing_scale"
SETTINGS = ("sym20", "sym50", "sym80", "sym90", "asym40")
TARGETS = {"sym20": 93.5, "sym50": 86.0, "sym80": 77.5, "sym90": 76.0, "asym40": 93.5}

#: The deviations of the default configuration from the paper (docs/deviations.md), one
#: ablation each: (name, description, overrides applied to ``load_config("default")``).
#: Placeholders: one per key where configs/default.toml differs from configs/paper.toml, set
#: back to its paper value.  :func:`uncovered_config_differences` lists keys not covered.
ABLATIONS: List[Tuple[str, str, Dict[str, object]]] = [
    # additions of the default over the paper method: the default with one of them set back
    ("no forward-corrected EAC", "EAC trained on the current labels (paper) instead of through T",
     {"eac_forward_correction": False}),
    ("no meta rows in EAC", "EAC does not fit the clean meta rows (eac_meta_weight 0, paper)",
     {"eac_meta_weight": 0.0}),
    ("EAC confidence penalty 0.4", "the paper's confidence penalty in EAC",
     {"eac_confidence_penalty": 0.4}),
    ("no EAC balance prior", "without the paper's class-balance term in EAC (weight 0)",
     {"eac_balance_weight": 0.0}),
    ("argmax final decision", "final label = argmax of the views' labels (paper), no Bayes posterior",
     {"final_decision": "argmax"}),
    ("no cross-fitted meta folds", "both views see the whole meta set (paper), not disjoint folds",
     {"cross_fit_meta": False}),
    ("no kNN-graph propagation", "purified labels not propagated over the cosine kNN-20 graph (paper)",
     {"graph_k": 0}),
    ("exchange EAC prediction", "the EMA exchange passes p(c|x) (paper), not the posterior p(c|x)T[c,g]",
     {"relabel_posterior": False}),
    ("T from the meta rows only", "no EM: T counted on the 1,000 meta rows only, not re-estimated "
     "from all rows' posteriors", {"transition_em_steps": 0}),
    ("no EAC refit on the posterior", "EAC not refitted on the posterior before the final decision "
     "(no M-step)", {"eac_refit_fraction": 0.0}),
    ("no held-out classifier", "no cross-fitted classifier on the posterior as an expert of the "
     "final decision (heldout_fraction 0)", {"heldout_fraction": 0.0}),
    # choices of the implementation that change the labels a little (not the method)
    ("graph on raw features, 1,800 candidates", "kNN graph on the raw 512-d features, each row "
     "compared with ~1,800 others (8 inverted-file probes; before 256 PCA dims and 7,000)",
     {"graph_dims": 0, "graph_candidates": 1800}),
    ("float32 products", "all batch products in float32 (the default uses bfloat16 on CPUs "
     "with native bf16 arithmetic)", {"compute_dtype": "float32"}),
    # the authors' script's accidents restored on the paper configuration (inherit = paper)
    ("paper + no relabel (script)", "the script's relabel branch never runs: no EMA exchange",
     {"inherit": "paper", "relabel_every": 0}),
    ("paper + double softmax, balance 2200 (script)", "EAC as in the script: Softmax in the model "
     "and again in the loss, class-balance weight 2,200", {"inherit": "paper", "eac_double_softmax": True,
                                                           "eac_balance_weight": 2200.0}),
    ("paper + whole-tensor Adam (script)", "Adam with weight decay over all N label rows at every step",
     {"inherit": "paper", "label_update_all_rows": True}),
    ("paper + no ridge (script)", "lambda = 0 (raised only if the Cholesky factorisation fails)",
     {"inherit": "paper", "ridge": 0.0}),
    ("paper + balance prior on the whole batch", "IPC balance prior on all 7,000 batch rows, not 1,024",
     {"inherit": "paper", "balance_rows": 0}),
]

BASELINE_NAMES = {
    "knn_vote": "kNN-20 vote",
    "cv_probe_relabel": "CV probe relabel",
    "cleanlab_relabel": "cleanlab relabel",
    "ridge_on_meta": "ridge on meta",
    "label_propagation_best_beta": "label propagation (best β, oracle)",
    "forward_corrected_bayes": "forward-corrected probe + Bayes",
}
DMLP_DEFAULT, DMLP_PAPER, DMLP_AUTO, NOISY = "DMLP default", "DMLP paper", "DMLP --meta auto", "noisy labels (given)"
SUMMARY_COLUMNS = [  # (column title, method name in the quality rows)
    ("noisy", NOISY), ("kNN-20 vote", BASELINE_NAMES["knn_vote"]),
    ("CV probe relabel", BASELINE_NAMES["cv_probe_relabel"]),
    ("cleanlab relabel", BASELINE_NAMES["cleanlab_relabel"]),
    ("ridge on 1k meta", BASELINE_NAMES["ridge_on_meta"]),
    ("label propagation (oracle β)", BASELINE_NAMES["label_propagation_best_beta"]),
    ("forward-corrected probe + Bayes", BASELINE_NAMES["forward_corrected_bayes"]),
    ("DMLP default", DMLP_DEFAULT), ("DMLP --meta auto", DMLP_AUTO), ("DMLP paper", DMLP_PAPER),
]
QUALITY_FIELDS = ["setting", "method", "kind", "seeds", "n_eval", "label_accuracy", "label_accuracy_std",
                  "n_changed", "probe_test_accuracy", "probe_test_accuracy_std", "seconds", "seconds_std",
                  "peak_rss_increase_mb", "soft_label_ece", "label_quality_auc", "note"]
SPEED_FIELDS = ["part", "config", "device", "n_rows", "dim", "epochs", "setup_s", "ipc_s", "eac_s",
                "final_s", "total_s", "per_epoch_s", "wall_s", "peak_rss_mb", "label_accuracy", "goal", "note"]


def log(msg: str) -> None:
    print(f"[benchmark] {msg}", file=sys.stderr, flush=True)


def parse_setting(s: str) -> Tuple[str, float]:
    s = s.strip()
    for mode in ("asym", "sym"):
        if s.startswith(mode):
            try:
                pct = float(s[len(mode):])
            except ValueError:
                break
            if 0 <= pct <= 100:
                return mode, pct / 100.0
    raise InputError(f"--settings: cannot parse {s!r} (expected e.g. sym20 or asym40)")


def uncovered_config_differences() -> Dict[str, Tuple[object, object]]:
    """Keys where configs/default.toml differs from paper.toml that no ABLATIONS entry sets back."""
    from dmlp.config import load_config
    d, p = load_config("default").to_dict(), load_config("paper").to_dict()
    covered = {k for _, _, over in ABLATIONS if over.get("inherit", "default") == "default" for k in over}
    return {k: (d[k], p[k]) for k in d if k != "name" and d[k] != p[k] and k not in covered}


# ----------------------------------------------------------------------------- measurement

def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Context manager: peak RSS increase (MB) over the RSS at entry, sampled by a thread."""

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


def machine_info(device: str = "cpu") -> Dict[str, str]:
    import torch
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {"date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "cpu": cpu, "cores": f"{usable} usable of {os.cpu_count()}",
            "torch_threads": str(torch.get_num_threads()), "torch": torch.__version__,
            "python": platform.python_version(), "device": "cpu"}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["device"] = f"cuda ({torch.cuda.get_device_name(0)})"
    return info


# ----------------------------------------------------------------------------- data

@dataclass
class Cifar:
    X: np.ndarray            # N x d float32
    y: np.ndarray            # N true labels
    X_test: Optional[np.ndarray]
    y_test: Optional[np.ndarray]
    n_classes: int
    note: str = ""
    superclass: Optional[np.ndarray] = None   # N superclass of each row (superclass.npy), if any


def require_cifar(data_dir) -> Path:
    """The CIFAR-10 feature folder, or an :class:`InputError` saying where the data comes from."""
    data = Path(data_dir)
    if not data.is_absolute() and not data.exists():
        data = REPO_ROOT / data
    missing = [n for n in ("trainfeatures.npy", "correctlabels.npy") if not (data / n).is_file()]
    if missing:
        raise InputError(f"--data {data_dir}: no {' or '.join(missing)} in {data}; the benchmark reads "
                         "CIFAR-10 features with their true labels (by default the shared folder "
                         "../shared/data/cifar10-effnet-lite2 beside the checkout); make them with "
                         "dmlp extract (README: getting CIFAR-10/100 features) and pass --data DIR")
    return data


def load_cifar(data_dir, subset: Optional[int] = None, test_subset: Optional[int] = None) -> Cifar:
    from dmlp.data import check_features, check_labels, load_npy
    data = require_cifar(data_dir)
    X = check_features(load_npy(data / "trainfeatures.npy"), "trainfeatures.npy")
    y = check_labels(load_npy(data / "correctlabels.npy", mmap=False), "correctlabels.npy",
                     n_rows=X.shape[0], rows_of="trainfeatures.npy")
    X_test = y_test = None
    if (data / "testfeatures.npy").exists() and (data / "testlabels.npy").exists():
        X_test = np.asarray(load_npy(data / "testfeatures.npy"), dtype=np.float32)
        y_test = check_labels(load_npy(data / "testlabels.npy", mmap=False), "testlabels.npy",
                              n_rows=X_test.shape[0], rows_of="testfeatures.npy")
    note = ""
    if subset and subset < X.shape[0]:
        rows = np.sort(np.random.default_rng(0).choice(X.shape[0], subset, replace=False))
        X, y = X[rows], y[rows]
        note = f"random subset of {subset} training rows (seed 0)"
        if X_test is not None and test_subset and test_subset < X_test.shape[0]:
            t = np.sort(np.random.default_rng(0).choice(X_test.shape[0], test_subset, replace=False))
            X_test, y_test = X_test[t], y_test[t]
            note += f", {test_subset} test rows"
    X = np.ascontiguousarray(X, dtype=np.float32)
    superclass = None
    if (data / "superclass.npy").exists():
        superclass = check_labels(load_npy(data / "superclass.npy", mmap=False), "superclass.npy",
                                  n_rows=len(y) if not note else None, rows_of="trainfeatures.npy")
        if note:
            superclass = superclass[rows]
    return Cifar(X, y, X_test, y_test, int(y.max()) + 1, note, superclass)


def benchmark_noise(data: Cifar, mode: str, rate: float, seed: int) -> np.ndarray:
    """Noisy labels of a setting: DivideMix's rule, or with a ``superclass`` and ``asym`` the
    CIFAR-100 rule (a selected row's label becomes the next fine class of its superclass,
    cyclically) on the rows DivideMix's rule selects."""
    from dmlp.noise import make_noisy_labels
    if mode != "asym" or data.superclass is None:
        return make_noisy_labels(data.y, mode, rate, seed, n_classes=data.n_classes)
    import random
    n = len(data.y)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    rows = np.asarray(order[:int(rate * n)], dtype=np.int64)
    following = {}
    for s in np.unique(data.superclass):
        fine = np.unique(data.y[data.superclass == s])
        following.update(zip(fine.tolist(), np.roll(fine, -1).tolist()))
    noisy = data.y.copy()
    noisy[rows] = [following[int(c)] for c in data.y[rows]]
    return noisy


class Probe:
    """Downstream view: a logistic probe (``baselines.fit_logistic``) trained on all training
    rows' labels, evaluated on the test set (features standardised with the training statistics)."""

    def __init__(self, data: Cifar, enabled: bool = True, max_iter: int = 100):
        self.enabled = enabled and data.X_test is not None
        self.max_iter, self.C = max_iter, data.n_classes
        if self.enabled:
            mu, sd = data.X.mean(0, keepdims=True), np.maximum(data.X.std(0, keepdims=True), 1e-6)
            self.Xs = (data.X - mu) / sd
            self.Xt = ((data.X_test - mu) / sd).astype(np.float32)
            self.yt = data.y_test

    def __call__(self, labels) -> float:
        if not self.enabled:
            return float("nan")
        import torch
        from dmlp.baselines import fit_logistic
        W, b = fit_logistic(self.Xs, labels, self.C, max_iter=self.max_iter, seed=0)
        with torch.no_grad():
            pred = (torch.from_numpy(self.Xt) @ W + b).argmax(1).numpy()
        return float((pred == self.yt).mean())


# ----------------------------------------------------------------------------- quality

@dataclass
class Measure:
    label_accuracy: float
    n_changed: int
    probe: float
    seconds: float
    peak_mb: float
    n_eval: int
    ece: float = float("nan")
    auc: float = float("nan")
    history: list = field(default_factory=list)


def _agg(values: Sequence[float]) -> Tuple[float, float]:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0 or np.all(np.isnan(v)):
        return float("nan"), float("nan")
    return float(np.nanmean(v)), (float(np.nanstd(v, ddof=1)) if v.size > 1 else float("nan"))


def quality_row(setting, method, kind, measures: List[Measure], seeds="0", note="") -> dict:
    acc, acc_sd = _agg([m.label_accuracy for m in measures])
    probe, probe_sd = _agg([m.probe for m in measures])
    sec, sec_sd = _agg([m.seconds for m in measures])
    return {"setting": setting, "method": method, "kind": kind, "seeds": seeds,
            "n_eval": measures[0].n_eval, "label_accuracy": acc, "label_accuracy_std": acc_sd,
            "n_changed": _agg([m.n_changed for m in measures])[0], "probe_test_accuracy": probe,
            "probe_test_accuracy_std": probe_sd, "seconds": sec, "seconds_std": sec_sd,
            "peak_rss_increase_mb": max(m.peak_mb for m in measures),
            "soft_label_ece": _agg([m.ece for m in measures])[0],
            "label_quality_auc": _agg([m.auc for m in measures])[0], "note": note}


def run_dmlp(data: Cifar, noisy, mask, meta_idx, cfg, probe: Probe, *, auto: bool = False,
             meta_size: int = 1000, device: str = "cpu") -> Measure:
    """One DMLP run, as ``dmlp purify`` makes it (:func:`dmlp.purify_dataset`): with the clean
    meta rows ``meta_idx`` (``--meta-index``), or ``auto`` (``--meta auto --meta-size meta_size``)."""
    from dmlp.data import Dataset
    from dmlp.metrics import expected_calibration_error, roc_auc
    from dmlp.pipeline import purify_dataset
    y = data.y
    dataset = Dataset.from_arrays(data.X, noisy, true_labels=y, n_classes=data.n_classes, name="benchmark")
    with PeakMemory(device=device) as mem:
        t0 = time.perf_counter()
        out = purify_dataset(dataset, cfg, meta_index=None if auto else meta_idx,
                             meta_size=meta_size if auto else None, auto_meta=auto, device=device)
        seconds = time.perf_counter() - t0
    keep = np.ones(len(y), dtype=bool)
    keep[out.meta_indices] = False
    ev = keep & mask                      # purified rows among the clean split's non-meta rows
    labels = out.labels
    return Measure(float((labels[ev] == y[ev]).mean()), int((labels[ev] != noisy[ev]).sum()),
                   probe(labels), seconds, mem.peak_mb, int(ev.sum()),
                   expected_calibration_error(out.soft_labels[ev], y[ev]),
                   roc_auc(-out.label_quality[ev], noisy[ev] != y[ev]), out.result.history)


def run_quality(data: Cifar, settings: Sequence[str], *, noise_seed: int = 0, meta_size: int = 1000,
                dmlp_seeds: Sequence[int] = (0, 1, 2), baselines: Optional[Sequence[str]] = None,
                run_dmlp_rows: bool = True, ablations: bool = True, probe: Optional[Probe] = None,
                epochs: Optional[int] = None, device: str = "cpu", notes: Optional[list] = None):
    """Quality rows for every setting, and the per-epoch histories of DMLP default/paper."""
    from dmlp.baselines import ALL_BASELINES, MissingDependencyError, cosine_knn
    from dmlp.config import load_config
    from dmlp.meta import draw_meta_indices
    from dmlp.noise import make_noisy_labels
    notes = notes if notes is not None else []
    probe = probe or Probe(data, enabled=False)
    X, y, C = data.X, data.y, data.n_classes
    meta_idx = draw_meta_indices(y, meta_size, 0)
    mask = np.ones(len(y), dtype=bool)
    mask[meta_idx] = False
    names = list(ALL_BASELINES) if baselines is None else list(baselines)
    knn = None
    if {"knn_vote", "label_propagation_best_beta"} & set(names):
        t0 = time.perf_counter()
        knn = cosine_knn(X, 20)
        notes.append(f"The cosine kNN-20 graph ({time.perf_counter() - t0:.1f} s) is computed once and "
                     "shared by kNN vote and label propagation; their seconds exclude it.")
    rows, histories = [], {}
    for setting in settings:
        mode, rate = parse_setting(setting)
        noisy = benchmark_noise(data, mode, rate, noise_seed)
        log(f"{setting}: given labels {100 * (noisy[mask] == y[mask]).mean():.2f} % correct")
        rows.append(quality_row(setting, NOISY, "given", [Measure(
            float((noisy[mask] == y[mask]).mean()), 0, probe(np.where(mask, noisy, y)), 0.0, 0.0,
            int(mask.sum()))], note="meta rows keep their clean labels in the probe"))
        cache = {}
        for name in names:
            with PeakMemory() as mem:
                t0 = time.perf_counter()
                try:
                    res = ALL_BASELINES[name](X, noisy, meta_idx, y[meta_idx], C, seed=noise_seed,
                                              knn=knn, cache=cache, true_labels=y)
                except MissingDependencyError as exc:
                    res = None
                    msg = f"{BASELINE_NAMES.get(name, name)} skipped: {exc}"
                    if msg not in notes:
                        notes.append(msg)
                dt = time.perf_counter() - t0
            if res is None:
                continue
            note = ""
            if res.info and "beta" in res.info:
                note = f"oracle: β={res.info['beta']:g} chosen on the truth"
            if name == "cleanlab_relabel" and ("cv_probe_probs", noise_seed) in cache:
                note = (note + "; " if note else "") + "reuses the CV probe's out-of-fold probabilities"
            m = Measure(float((res.labels[mask] == y[mask]).mean()),
                        int((res.labels[mask] != noisy[mask]).sum()), probe(res.labels), dt,
                        mem.peak_mb, int(mask.sum()))
            kind = "oracle" if name == "label_propagation_best_beta" else "baseline"
            rows.append(quality_row(setting, BASELINE_NAMES.get(name, name), kind, [m], note=note))
            log(f"{setting} {name}: {100 * m.label_accuracy:.2f} % in {dt:.1f} s")
        if not run_dmlp_rows:
            continue
        ep = {} if epochs is None else {"epochs": epochs}
        runs = [(DMLP_DEFAULT, "dmlp", load_config("default", **ep), list(dmlp_seeds), False, ""),
                (DMLP_PAPER, "dmlp", load_config("paper", **ep), [dmlp_seeds[0]], False, ""),
                (DMLP_AUTO, "dmlp", load_config("default", **ep), [dmlp_seeds[0]], True,
                 f"no clean labels: its own {meta_size} meta rows (auto_meta_indices, given labels "
                 "trusted); evaluated on its purified rows ∩ the clean split's non-meta rows; its probe "
                 "uses no clean label")]
        if ablations:
            for name, desc, over in ABLATIONS:
                over = dict(over)
                base = over.pop("inherit", "default")     # script-accident rows start from paper
                runs.append((f"ablation: {name}", "ablation", load_config(base, **ep).replace(**over),
                             [dmlp_seeds[0]], False, desc))
        for method, kind, cfg, seeds, auto, note in runs:
            ms = []
            for s in seeds:
                m = run_dmlp(data, noisy, mask, meta_idx, cfg.replace(seed=s), probe, auto=auto,
                             meta_size=meta_size, device=device)
                ms.append(m)
                log(f"{setting} {method} seed {s}: {100 * m.label_accuracy:.2f} % in {m.seconds:.1f} s")
            histories[(setting, method)] = ms[0].history
            rows.append(quality_row(setting, method, kind, ms, ",".join(map(str, seeds)), note))
    return rows, histories


# ----------------------------------------------------------------------------- speed

def _warm_up(device: str, d: int, n_classes: int) -> None:
    """On a GPU, one tiny unrecorded run first, so CUDA start-up is not billed to the first row."""
    if device == "cpu":
        return
    from dmlp.config import load_config
    from dmlp.purify import purify
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, d)).astype(np.float32)
    y = np.arange(2000) % n_classes
    purify(X, y, X[:200], y[:200], load_config("default", epochs=1, batch_size=1000),
           n_classes=n_classes, device=device, progress=False)


def run_speed(data: Cifar, *, setting: str = "sym50", noise_seed: int = 0, meta_size: int = 1000,
              epochs: Optional[int] = None, device: str = "cpu", repeats: int = 1) -> List[dict]:
    """CIFAR-10 full runs (default and paper configs) with the timings split of PurifyResult.

    Each config runs ``repeats`` times; its row is the run with the median total time, and the
    note lists every total (shared machines vary from run to run)."""
    from dmlp.config import load_config
    from dmlp.data import Dataset
    from dmlp.meta import draw_meta_indices
    from dmlp.noise import make_noisy_labels
    from dmlp.pipeline import purify_dataset
    mode, rate = parse_setting(setting)
    X, y, C = data.X, data.y, data.n_classes
    noisy = make_noisy_labels(y, mode, rate, noise_seed, n_classes=C)
    dataset = Dataset.from_arrays(X, noisy, true_labels=y, n_classes=C, name="benchmark")
    meta_idx = draw_meta_indices(y, meta_size, 0)
    keep = np.ones(len(y), dtype=bool)
    keep[meta_idx] = False
    out = []
    _warm_up(device, X.shape[1], C)
    for name in ("default", "paper"):
        cfg = load_config(name, **({} if epochs is None else {"epochs": epochs}))
        runs = []
        for _ in range(max(1, repeats)):
            with PeakMemory(device=device) as mem:
                t0 = time.perf_counter()
                res = purify_dataset(dataset, cfg, meta_index=meta_idx, device=device).result
                wall = time.perf_counter() - t0
            runs.append((res.timings["total"], res, wall, mem))
        totals = [r[0] for r in runs]
        _, res, wall, mem = sorted(runs, key=lambda r: r[0])[(len(runs) - 1) // 2]   # the median run
        t = res.timings
        note = f"CIFAR-10 {setting}, {cfg.run.views} views, batch {cfg.run.batch_size}; peak = RSS increase"
        if len(runs) > 1:
            note += f"; median of {len(runs)} runs, totals " + " / ".join(f"{x:.2f}" for x in totals) + " s"
        if mem.gpu_peak_mb is not None:
            note += f"; GPU peak allocated {mem.gpu_peak_mb:.0f} MB"
        out.append({"part": "cifar10", "config": name, "device": machine_info(device)["device"],
                    "n_rows": int(keep.sum()), "dim": X.shape[1], "epochs": cfg.run.epochs,
                    "setup_s": t["setup"], "ipc_s": t["ipc"], "eac_s": t["eac"], "final_s": t["final"],
                    "total_s": t["total"], "per_epoch_s": (t["ipc"] + t["eac"]) / cfg.run.epochs,
                    "wall_s": wall, "peak_rss_mb": mem.peak_mb,
                    "label_accuracy": float((res.labels == y[keep]).mean()), "note": note,
                    "goal": f"≤ 10 s {'✓' if t['total'] <= 10 else '✗'}"
                    + ("" if len(y) >= 50_000 and cfg.run.epochs == 100 else " (not the full run)")})
        log(f"speed cifar10 {name}: {t['total']:.1f} s, {100 * out[-1]['label_accuracy']:.2f} %")
    return out


# ----------------------------------------------------------------------------- scale

SCALE_SIZES = {   # generated rows, dim, meta rows, test rows, DMLP.py epochs (None = config), sweeps
    "full": dict(n=1_000_000, d=2048, meta=2800, test=10000, epochs=None, sweep_epochs=2,
                 sweep_n=(50_000, 200_000, 1_000_000), sweep_d=(256, 512, 1024, 2048), sweep_d_n=200_000),
    "small": dict(n=20_000, d=2048, meta=1400, test=2000, epochs=3, sweep_epochs=2,
                  sweep_n=(5_000, 10_000, 20_000), sweep_d=(256, 512, 1024, 2048), sweep_d_n=10_000),
    "tiny": dict(n=3_000, d=128, meta=280, test=500, epochs=2, sweep_epochs=1,
                 sweep_n=(1_000, 3_000), sweep_d=(64, 128), sweep_d_n=2_000),
}
# Clothing1M's classes in confusable groups (T-shirt/shirt/chiffon, knitwear/sweater/hoodie,
# windbreaker/jacket/down coat, suit/vest, shawl/dress/underwear).
CLOTHING_GROUPS = ((0, 1, 3), (2, 4, 5), (6, 7, 8), (9, 12), (10, 11, 13))


def make_clothing_like(folder, n: int, d: int, n_meta: int, n_test: int, *, seed: int = 0,
                       noise: float = 0.38, chunk: int = 50_000) -> dict:
    """Write a Clothing1M-shaped synthetic data set (generated once; reused if the spec matches).

    14-class Gaussian mixture: each class mean is its group's centre plus a class offset (classes
    in a group are close, so confusable), anisotropic per-dimension noise, mildly unequal class
    priors.  Noise: each class flips with its own rate (mean ``noise``), 75 % of the flips to the
    other classes of its group, 25 % to any other class.  ``trainfeatures.npy`` is float16,
    written through ``np.lib.format.open_memmap`` chunk by chunk; ``correctlabels.npy`` holds the
    truth, ``metafeatures.npy``/``metalabels.npy`` a separate clean set, plus a test set.
    """
    folder = Path(folder)
    spec = {"n": n, "d": d, "meta": n_meta, "test": n_test, "seed": seed, "noise": noise, "version": 1}
    stamp = folder / "spec.json"
    if stamp.exists() and json.loads(stamp.read_text()) == spec and (folder / "noise.json").exists():
        return {**spec, **json.loads((folder / "noise.json").read_text())}
    folder.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    C = 14
    rng = np.random.default_rng(seed)
    group_of = np.empty(C, dtype=np.int64)
    for g, members in enumerate(CLOTHING_GROUPS):
        group_of[list(members)] = g
    scale = 2048 / d                     # keep the separation (|mu_i - mu_j| ~ sqrt(d) * a) fixed
    centres = rng.normal(size=(len(CLOTHING_GROUPS), d)) * 0.07 * math.sqrt(scale)
    means = (centres[group_of] + rng.normal(size=(C, d)) * 0.05 * math.sqrt(scale)).astype(np.float32)
    sd = np.exp(rng.normal(size=d) * 0.3).astype(np.float32)
    prior = rng.uniform(0.5, 1.5, size=C)
    prior /= prior.sum()
    rates = rng.uniform(0.25, 0.5, size=C)
    rates *= noise / float(prior @ rates)
    T = np.zeros((C, C))
    for c in range(C):
        mates = [m for m in CLOTHING_GROUPS[group_of[c]] if m != c]
        others = [m for m in range(C) if m != c]
        T[c, mates] += 0.75 * rates[c] / len(mates)
        T[c, others] += 0.25 * rates[c] / len(others)
        T[c, c] = 1.0 - rates[c]

    def sample(n_rows, out=None):
        y = rng.choice(C, size=n_rows, p=prior)
        feats = out if out is not None else np.empty((n_rows, d), dtype=np.float16)
        for s in range(0, n_rows, chunk):
            e = min(n_rows, s + chunk)
            z = rng.standard_normal((e - s, d), dtype=np.float32)
            z *= sd
            z += means[y[s:e]]
            feats[s:e] = z
        return feats, y

    log(f"scale: generating {n} x {d} float16 features in {folder} ...")
    train = np.lib.format.open_memmap(folder / "trainfeatures.npy", mode="w+", dtype=np.float16, shape=(n, d))
    _, y = sample(n, train)
    train.flush()
    del train
    cum = T.cumsum(1)
    u = rng.random(n)
    noisy = np.minimum((u[:, None] > cum[y]).sum(1), C - 1).astype(np.int64)
    np.save(folder / "correctlabels.npy", y.astype(np.int64))
    np.save(folder / "trainlabels.npy", noisy)
    ml = rng.permutation(np.arange(n_meta) % C)     # balanced clean set, every class present
    mf = (rng.standard_normal((n_meta, d), dtype=np.float32) * sd + means[ml]).astype(np.float16)
    np.save(folder / "metafeatures.npy", mf)
    np.save(folder / "metalabels.npy", ml.astype(np.int64))
    tf, tl = sample(n_test)
    np.save(folder / "testfeatures.npy", tf)
    np.save(folder / "testlabels.npy", tl.astype(np.int64))
    spec["measured_noise"] = float((noisy != y).mean())
    stamp.write_text(json.dumps({k: v for k, v in spec.items() if k != "measured_noise"}))
    (folder / "noise.json").write_text(json.dumps({"measured_noise": spec["measured_noise"]}))
    return spec


def run_dmlp_cli(data_dir, out_dir, *, config: str = "clothing1m", device: str = "cpu",
                 epochs: Optional[int] = None) -> dict:
    """``python DMLP.py --config CONFIG --data DIR --out OUT --quiet`` in a subprocess: wall
    seconds, the child's own peak RSS (``os.wait4``) and its summary.json."""
    cmd = [sys.executable, str(REPO_ROOT / "DMLP.py"), "--config", config, "--data", str(data_dir),
           "--out", str(out_dir), "--quiet", "--overwrite", "--device", device]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(shlex.quote, cmd))} failed ({proc.returncode}):\n{output}")
    summary = json.loads((Path(out_dir) / "summary.json").read_text())
    return {"command": " ".join(map(shlex.quote, cmd)), "wall_s": wall,
            "peak_rss_mb": usage.ru_maxrss / 1024, "summary": summary, "output": output}


def _slope(xs, ys) -> float:
    xs, ys = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(xs, ys, 1)[0]) if len(xs) > 1 else float("nan")


def run_scale(scale_dir, sizes: str = "full", *, device: str = "cpu") -> Tuple[List[dict], dict]:
    """Clothing1M-scale rows (the DMLP.py runs and the N / d sweeps) and the fitted slopes."""
    from dmlp.config import load_config
    from dmlp.data import load_npy
    from dmlp.purify import purify
    p = SCALE_SIZES[sizes]
    folder = Path(scale_dir) / sizes
    spec = make_clothing_like(folder, p["n"], p["d"], p["meta"], p["test"])
    noise = json.loads((folder / "noise.json").read_text())["measured_noise"]
    dev_name = machine_info(device)["device"]
    rows = []
    for config in ("clothing1m", "clothing1m_paper"):
        log(f"scale: DMLP.py --config {config} on {p['n']} x {p['d']} ...")
        r = run_dmlp_cli(folder, Path(scale_dir) / f"out_{sizes}_{config}_{device.replace(':', '')}",
                         config=config, device=device, epochs=p["epochs"])
        s = r["summary"]
        t = s["timings"]
        ep = s["config"]["epochs"]
        note = (f"DMLP.py subprocess, peak = child's ru_maxrss; given labels "
                f"{100 * s.get('label_accuracy_before', float('nan')):.1f} % correct "
                f"(noise {100 * noise:.1f} %)")
        if "test_accuracy" in s:
            note += f"; EAC test accuracy {100 * s['test_accuracy']:.1f} %"
        rows.append({"part": "clothing1m-scale", "config": config, "device": dev_name,
                     "n_rows": s["n_purified"], "dim": p["d"], "epochs": ep, "setup_s": t["setup"],
                     "ipc_s": t["ipc"], "eac_s": t["eac"], "final_s": t["final"], "total_s": t["total"],
                     "per_epoch_s": (t["ipc"] + t["eac"]) / ep, "wall_s": r["wall_s"],
                     "peak_rss_mb": r["peak_rss_mb"], "label_accuracy": s.get("label_accuracy_after"),
                     "note": note, "command": r["command"],
                     "goal": (f"< 10 min {'✓' if r['wall_s'] < 600 else '✗'}, < 12 GB "
                              f"{'✓' if r['peak_rss_mb'] < 12 * 1024 else '✗'}")
                     + ("" if sizes == "full" else f" ({sizes} size, not the goal's)")})
        log(f"scale: {config}: {r['wall_s']:.1f} s wall, {r['peak_rss_mb'] / 1024:.2f} GB peak, "
            f"{100 * s.get('label_accuracy_after', float('nan')):.2f} %")
    X = load_npy(folder / "trainfeatures.npy")
    y_noisy = np.load(folder / "trainlabels.npy")
    y_true = np.load(folder / "correctlabels.npy")
    mf, ml = np.load(folder / "metafeatures.npy"), np.load(folder / "metalabels.npy")
    cfg = load_config("clothing1m", epochs=p["sweep_epochs"])
    sweep = [("N", n, p["d"]) for n in p["sweep_n"]] + [("d", p["sweep_d_n"], d) for d in p["sweep_d"]]
    slopes: Dict[str, List] = {"N": [], "d": []}
    _warm_up(device, p["d"], 14)
    for axis, n, d in sweep:
        feats = X[:n] if d == X.shape[1] else X[:n, :d]
        with PeakMemory(device=device) as mem:
            t0 = time.perf_counter()
            res = purify(feats, y_noisy[:n], mf[:, :d].astype(np.float32), ml, cfg, n_classes=14,
                         device=device, progress=False)
            wall = time.perf_counter() - t0
        t = res.timings
        per_epoch = (t["ipc"] + t["eac"]) / cfg.run.epochs
        slopes[axis].append((n if axis == "N" else d, per_epoch))
        resident = n * d * 4 <= cfg.run.resident_limit_gb * 2 ** 30
        rows.append({"part": f"sweep-{axis}", "config": "clothing1m", "device": dev_name, "n_rows": n,
                     "dim": d, "epochs": cfg.run.epochs, "setup_s": t["setup"], "ipc_s": t["ipc"],
                     "eac_s": t["eac"], "final_s": t["final"], "total_s": t["total"],
                     "per_epoch_s": per_epoch, "wall_s": wall, "peak_rss_mb": mem.peak_mb,
                     "label_accuracy": float((res.labels == y_true[:n]).mean()),
                     "note": ("features resident in RAM" if resident else "features streamed from the memory map")
                     + "; peak = RSS increase"})
        log(f"scale sweep N={n} d={d}: {per_epoch:.2f} s/epoch")
    fit = {axis: _slope(*zip(*pts)) if len(pts) > 1 else float("nan") for axis, pts in slopes.items()}
    return rows, {"slopes": fit, "spec": spec, "noise": noise, "folder": str(folder)}


# ----------------------------------------------------------------------------- formatting

def _pct(x, sd=float("nan")) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    s = f"{100 * x:.2f}"
    return s + (f" ± {100 * sd:.2f}" if sd == sd else "")


def _num(x, fmt="{:.1f}", sd=float("nan")) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return fmt.format(x) + ((" ± " + fmt.format(sd)) if sd == sd else "")


def emit(text: str, out: Optional[str], script: str, argv) -> None:
    """Print a benchmark's Markdown output and, with ``out``, write it there under its command line."""
    print(text)
    if out:
        Path(out).write_text(f"Command: `python {script} {' '.join(argv or sys.argv[1:])}`\n\n" + text)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def summary_table(rows: List[dict], settings: Sequence[str], verdicts: bool = True) -> str:
    """The summary table; ``verdicts=False`` (``--quick``) leaves out the target column."""
    by = {(r["setting"], r["method"]): r for r in rows}
    body = []
    for s in settings:
        cells = [s]
        for _, method in SUMMARY_COLUMNS:
            r = by.get((s, method))
            cells.append(_pct(r["label_accuracy"], r["label_accuracy_std"]) if r else "n/a")
        if not verdicts:
            body.append(cells)
            continue
        target = TARGETS.get(s)
        d = by.get((s, DMLP_DEFAULT))
        if target is None:
            cells.append("–")
        elif d is None:
            cells.append(f"≥{target:g} (not run)")
        else:
            cells.append(f"≥{target:g} {'✓' if 100 * d['label_accuracy'] >= target else '✗'}")
        body.append(cells)
    return md_table(["setting"] + [c for c, _ in SUMMARY_COLUMNS] + (["target (DMLP default)"] if verdicts else []),
                    body)


def quality_table(rows: List[dict]) -> str:
    body = []
    for r in rows:
        body.append([r["setting"], r["method"], _pct(r["label_accuracy"], r["label_accuracy_std"]),
                     _num(r["n_changed"], "{:.0f}"), _pct(r["probe_test_accuracy"], r["probe_test_accuracy_std"]),
                     _num(r["seconds"], "{:.1f}", r["seconds_std"]), _num(r["peak_rss_increase_mb"], "{:.0f}"),
                     r["note"]])
    return md_table(["setting", "method", "label acc. (%)", "changed rows", "probe test acc. (%)",
                     "seconds", "peak RSS incr. (MB)", "note"], body)


def diagnostics_table(rows: List[dict]) -> str:
    body = [[r["setting"], r["method"], r["seeds"], _num(r["soft_label_ece"], "{:.4f}"),
             _num(r["label_quality_auc"], "{:.4f}")]
            for r in rows if r["method"] in (DMLP_DEFAULT, DMLP_PAPER, DMLP_AUTO)]
    return md_table(["setting", "method", "seeds", "soft-label ECE", "wrong-label ROC-AUC"], body)


def speed_table(rows: List[dict]) -> str:
    body = [[r["part"], r["config"], r["device"], r["n_rows"], r["dim"], r["epochs"], _num(r["setup_s"], "{:.2f}"),
             _num(r["ipc_s"], "{:.2f}"), _num(r["eac_s"], "{:.2f}"), _num(r["final_s"], "{:.2f}"),
             _num(r["total_s"], "{:.2f}"), _num(r["per_epoch_s"], "{:.3f}"), _num(r["wall_s"], "{:.1f}"),
             _num(r["peak_rss_mb"], "{:.0f}"), _pct(r["label_accuracy"]), r.get("goal", "")] for r in rows]
    return md_table(["part", "config", "device", "rows", "d", "epochs", "setup (s)", "IPC (s)", "EAC (s)",
                     "final (s)", "total (s)", "s / epoch", "wall (s)", "peak RSS (MB)", "label acc. (%)",
                     "goal"], body)


def write_csv(path: Path, rows: List[dict], fields: Sequence[str]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def plot_histories(histories: dict, path: Path, setting: str) -> Optional[str]:
    """Label accuracy per epoch of DMLP default and paper on ``setting``; None if no matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in (DMLP_DEFAULT, DMLP_PAPER):
        h = histories.get((setting, method))
        if h:
            ax.plot([e["epoch"] for e in h], [100 * e["label_accuracy"] for e in h], label=method)
    ax.set_xlabel("epoch")
    ax.set_ylabel("label accuracy of the purified rows (%)")
    ax.set_title(f"CIFAR-10 {setting}: label accuracy per epoch\n(views' labels, before the final decision)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


# ----------------------------------------------------------------------------- CLI

def build_parser() -> "ArgumentParser":
    p = ArgumentParser(
        prog="benchmark.py",
        description="DMLP benchmark: label-quality table against baselines (CIFAR-10 features), speed "
                    "and Clothing1M-scale tables.  Writes OUT_DIR/benchmarks.md and CSV files.")
    p.add_argument("--all", action="store_true", help="quality + speed + scale parts (the full benchmark)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: one setting, a 10k-row subset, few epochs, 2 DMLP seeds (seconds)")
    p.add_argument("--quality", action="store_true", help="run the quality part (default when no part is named)")
    p.add_argument("--speed", action="store_true", help="run the CIFAR-10 speed part")
    p.add_argument("--speed-repeats", type=int, default=3,
                   help="runs per config in the speed part; the median run is reported (default 3)")
    p.add_argument("--scale", action="store_true", help="run the Clothing1M-scale part")
    p.add_argument("--data", default=DEFAULT_DATA, help=f"CIFAR-10 feature folder (default {DEFAULT_DATA}, "
                   "relative to the repo root)")
    p.add_argument("--settings", default=None, help="comma-separated, e.g. sym50,asym40 (default all five)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (DivideMix protocol); also the baselines' seed")
    p.add_argument("--dmlp-seeds", default="0,1,2", help="config seeds of the DMLP default rows (mean ± std)")
    p.add_argument("--meta-size", type=int, default=1000, help="clean meta rows (draw_meta_indices, seed 0)")
    p.add_argument("--epochs", type=int, default=None, help="override DMLP epochs (quality and speed parts)")
    p.add_argument("--subset", type=int, default=None, help="use a random subset of this many training rows")
    p.add_argument("--skip-baselines", action="store_true", help="no baseline rows")
    p.add_argument("--baselines", default=None, help="comma-separated subset of the baselines")
    p.add_argument("--skip-dmlp", action="store_true", help="no DMLP rows (baselines only)")
    p.add_argument("--skip-ablations", action="store_true", help="no ablation rows")
    p.add_argument("--no-probe", action="store_true", help="skip the downstream linear probe")
    p.add_argument("--device", default="cpu", help="device of the speed and scale parts: cpu or cuda")
    p.add_argument("--quality-device", default="cpu", help="device of the DMLP rows of the quality part (baselines and probes run on the CPU)")
    p.add_argument("--scale-dir", default=DEFAULT_SCALE_DIR, help="folder of the synthetic Clothing1M-scale "
                   "data (generated once, reused)")
    p.add_argument("--scale-sizes", choices=sorted(SCALE_SIZES), default="full",
                   help="full (1M x 2048), small (20k rows, quick check) or tiny (tests)")
    p.add_argument("--feature-sets", default=None, metavar="NAME=DIR,...",
                   help="quality of every method on several feature sets, one table (the first set: --dmlp-seeds; no "
                        "ablations); --settings applies to each (a 100-class set skips sym90)")
    p.add_argument("--baselines-from", default=None, metavar="FEATURE_SETS.csv",
                   help="with --feature-sets: take the baseline rows from an earlier run's feature_sets.csv "
                        "instead of running them again (they do not depend on DMLP's config)")
    p.add_argument("--out-dir", default=None, help="where benchmarks.md, the CSVs and the plot go "
                   "(default docs/; with --quick runs/benchmark-quick/)")
    return p


def _feature_sets_main(args, argv) -> int:
    from benchmarks.feature_set_quality import parse_feature_sets, run_feature_sets
    sets = parse_feature_sets(args.feature_sets)
    for folder in sets.values():
        require_cifar(folder)                 # before any output
    chosen = [x.strip() for x in (args.settings or ",".join(SETTINGS)).split(",") if x.strip()]
    settings_of = {name: [x for x in chosen if not (x == "sym90" and (Path(folder) / "superclass.npy").exists())]
                   for name, folder in sets.items()}
    seeds = [int(s) for s in args.dmlp_seeds.split(",") if s.strip()]
    if not seeds:
        raise InputError("--dmlp-seeds: give at least one seed")
    reused = []
    if args.baselines_from:
        from benchmarks.feature_set_quality import baseline_rows_from
        reused = baseline_rows_from(args.baselines_from, list(sets))
    rows = []
    for i, (name, folder) in enumerate(sets.items()):   # the table so far is written after every set
        rows += run_feature_sets({name: folder}, settings_of, meta_size=args.meta_size,
                                 noise_seed=args.seed, epochs=args.epochs,
                                 dmlp_seeds=seeds if i == 0 else seeds[:1],
                                 baselines=[] if reused else None)
        rows += [r for r in reused if r["feature_set"] == name and r["setting"] in settings_of[name]]
        _write_feature_sets(args, argv, rows)
    return 0


def _write_feature_sets(args, argv, rows) -> None:
    from benchmarks.feature_set_quality import feature_set_table
    text = ("# DMLP across feature sets\n\nCommand: `python scripts/benchmark.py "
            + " ".join(map(shlex.quote, argv)) + "`\n\n" + feature_set_table(rows) + "\n\n"
            "Label accuracy (%) on the non-meta rows (1,000 clean meta rows drawn with seed 0, noise seed "
            f"{args.seed}); every method reads the features centred and RMS-scaled. Last column: the DMLP "
            "default minus the best baseline (the oracle label propagation included)."
            + (f" Baseline columns read from `{args.baselines_from}` (an earlier run of this command; the "
               "baselines do not depend on DMLP's config)." if args.baselines_from else "") + "\n")
    print(text)
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "feature_sets.md").write_text(text)
        write_csv(out / "feature_sets.csv", rows, ["feature_set", "dims", "classes"] + list(QUALITY_FIELDS))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.feature_sets:
        return _feature_sets_main(args, argv)
    from dmlp.baselines import ALL_BASELINES
    from dmlp.device import resolve_device
    device = str(resolve_device(args.device))
    quality = args.quality or args.all or args.quick or not (args.speed or args.scale)
    speed = args.speed or args.all or args.quick
    if quality or speed:
        require_cifar(args.data)                 # before any output: say where the data come from
    scale = args.scale or args.all
    settings = [s.strip() for s in (args.settings or ("sym50" if args.quick else ",".join(SETTINGS))).split(",") if s.strip()]
    for s in settings:
        parse_setting(s)
    seeds = [int(s) for s in args.dmlp_seeds.split(",") if s.strip()]
    if args.quick and args.dmlp_seeds == "0,1,2":
        seeds = [0]
    if not seeds:
        raise InputError("--dmlp-seeds: give at least one seed")
    subset = args.subset or (10_000 if args.quick else None)
    epochs = args.epochs or (3 if args.quick else None)
    meta_size = 500 if args.quick and args.meta_size == 1000 else args.meta_size
    names = None
    if args.skip_baselines:
        names = []
    elif args.baselines:
        names = [b.strip() for b in args.baselines.split(",") if b.strip()]
        for b in names:
            if b not in ALL_BASELINES:
                raise InputError(f"--baselines: unknown baseline {b!r} (known: {', '.join(ALL_BASELINES)})")
    if quality or speed:
        require_cifar(args.data)
    out_dir = Path(args.out_dir) if args.out_dir else REPO_ROOT / ("runs/benchmark-quick" if args.quick else "docs")
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = "" if device == "cpu" or quality else "_" + device.replace(":", "")

    info = machine_info(device)
    notes: List[str] = []
    sections: List[str] = []

    def emit(text: str) -> None:
        print(text + "\n", flush=True)
        sections.append(text)

    emit("# DMLP benchmark")
    emit(f"Command: `python scripts/benchmark.py {' '.join(map(shlex.quote, argv))}`  \n"
         f"Date: {info['date']}  \nMachine: {info['cpu']}, {info['cores']} cores (torch threads "
         f"{info['torch_threads']}), torch {info['torch']}, Python {info['python']}  \n"
         f"Device: quality part (DMLP rows) {args.quality_device}; speed/scale part {info['device']}")
    quality_rows, speed_rows = [], []
    data = None
    if quality or speed:
        data = load_cifar(args.data, subset, test_subset=2000 if args.quick else None)
        if data.note:
            notes.append(f"Data: {data.note}.")
    if quality:
        probe = Probe(data, enabled=not (args.no_probe or args.quick))
        quality_rows, histories = run_quality(
            data, settings, noise_seed=args.seed, meta_size=meta_size, dmlp_seeds=seeds, baselines=names,
            run_dmlp_rows=not args.skip_dmlp, ablations=not (args.skip_ablations or args.quick), probe=probe,
            epochs=epochs, device=args.quality_device, notes=notes)
        n_eval = len(data.y) - meta_size
        emit("## Quality: summary (label accuracy, %)")
        emit(summary_table(quality_rows, settings, verdicts=not args.quick))
        emit(f"Label accuracy (%) of each method's labels on the {n_eval} non-meta rows of CIFAR-10 "
             f"(DivideMix-protocol noise, noise seed {args.seed}; the same {meta_size} clean meta rows, "
             f"`draw_meta_indices(correct, {meta_size}, seed=0)`, for every method). DMLP default: mean ± "
             f"std over config seeds {','.join(map(str, seeds))}. "
             + ("--quick: a smoke run, so no target is judged. " if args.quick else
                "Target: the accuracy DMLP default is expected to reach (✓ = mean reaches it). ")
             + "Label propagation picks its β with hindsight on the truth (an oracle). "
             "DMLP --meta auto uses no clean label: its own meta rows are chosen from the noisy data.")
        emit("## Quality: all methods per setting")
        emit(quality_table(quality_rows))
        emit("Columns: label accuracy on the evaluated non-meta rows; changed rows = evaluated rows whose "
             "label differs from the given one; probe test acc. = a logistic probe "
             "(`baselines.fit_logistic`, standardised features) trained on all training rows' labels "
             "(meta rows with their clean labels) and scored on testfeatures/testlabels; seconds = "
             "wall time of the method (DMLP: meta selection + `purify`, without the probe); peak RSS "
             "incr. = highest resident set size sampled every 10 ms during the method minus the RSS just "
             "before it (a process-wide measure, so memory the method reuses from earlier allocations "
             "is not counted). Ablation rows: the default config with one deviation set back to the "
             "paper's value (`ABLATIONS` in benchmarks/harness.py).")
        if not args.skip_dmlp:
            emit("## DMLP soft labels and label quality")
            emit(diagnostics_table(quality_rows))
            emit("Soft-label ECE: expected calibration error (15 bins) of the purified soft labels against "
                 "the truth. Wrong-label ROC-AUC: how well low `label_quality` ranks the truly wrong given "
                 "labels above the right ones (0.5 = chance, 1 = perfect). Mean over the seeds listed.")
        if args.epochs or args.quick:
            notes.append(f"DMLP epochs overridden to {epochs} (config: 100).")
        plot_setting = "sym50" if "sym50" in settings else settings[0]
        if not args.skip_dmlp:
            png = plot_histories(histories, out_dir / "accuracy_per_epoch.png", plot_setting)
            if png:
                emit(f"![label accuracy per epoch, {plot_setting}](accuracy_per_epoch.png)  \n"
                     f"Label accuracy per epoch of DMLP default and paper on {plot_setting} "
                     f"(accuracy of the views' averaged labels, before the final Bayes decision).")
            else:
                notes.append("Plot skipped: matplotlib is not installed (pip install matplotlib).")
        write_csv(out_dir / "benchmark_quality.csv", quality_rows, QUALITY_FIELDS)
        missing = uncovered_config_differences()
        if missing:
            notes.append("Config keys where default differs from paper without an ablation row: "
                         + ", ".join(f"{k} ({a!r} vs {b!r})" for k, (a, b) in missing.items()) + ".")
    if speed:
        speed_rows += run_speed(data, setting="sym50", noise_seed=args.seed, meta_size=meta_size,
                                epochs=epochs, device=device, repeats=1 if args.quick else args.speed_repeats)
    slopes = None
    if scale:
        rows, extra = run_scale(args.scale_dir, args.scale_sizes, device=device)
        speed_rows += rows
        slopes = extra
    if speed_rows:
        emit("## Speed and scale")
        emit(speed_table(speed_rows))
        text = ("" if not speed else "cifar10: the CIFAR-10 sym50 full run (all non-meta rows) with PurifyResult.timings "
                "(setup = I/O, partition, Gram factorisations; IPC; EAC; final decision); goal ≤ 10 s total. "
                "s / epoch = (IPC + EAC) / epochs. peak RSS: RSS increase during the run (in-process rows) "
                "or the subprocess's own ru_maxrss (clothing1m-scale rows).")
        if device != "cpu":
            text += (" On a GPU the IPC/EAC split is approximate (kernels run asynchronously; each "
                     "batch's loss read synchronises).")
        if slopes:
            sp = slopes["spec"]
            text += (f" clothing1m-scale: `DMLP.py --config clothing1m[_paper] --quiet` in a subprocess on "
                     f"synthetic Clothing1M-shaped data ({sp['n']} x {sp['d']} float16 memory map, 14 classes "
                     f"in confusable groups, {100 * slopes['noise']:.1f} % class-dependent noise, separate clean "
                     f"meta set of {sp['meta']} rows; in {slopes['folder']}); goal < 10 min and < 12 GB peak RSS. "
                     f"sweep-N / sweep-d: in-process `purify` with the clothing1m config on the first N rows / "
                     f"first d columns. Fitted log-log slope of s / epoch: "
                     f"**{slopes['slopes']['N']:.2f} in N**, **{slopes['slopes']['d']:.2f} in d**.")
        emit(text)
        write_csv(out_dir / f"benchmark_speed{tag}.csv", speed_rows, SPEED_FIELDS)
    if notes:
        emit("## Notes\n\n" + "\n".join(f"- {n}" for n in notes))
    (out_dir / f"benchmarks{tag}.md").write_text("\n\n".join(sections) + "\n")
    log(f"wrote {out_dir / f'benchmarks{tag}.md'}")
    return 0
