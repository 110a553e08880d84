"""The kNN search of the final decision against faiss: recall of the exact top-k and seconds.

    python benchmarks/knn_search.py [--data DIR] [--sizes 50000,1000000] [--k 20] [--out FILE.md]

Rows: the shared CIFAR-10 features (centred, RMS-scaled, projected on 256 principal directions
as the decision does with ``graph_dims = 256``) for the first size, and a synthetic clustered
set of 256-d rows (14 classes x 50 modes) for larger sizes.  Methods: the exhaustive search
(:func:`dmlp.graph.exact_knn_search`), the inverted file of :func:`dmlp.graph.knn_search` in
float32 and bfloat16 (``candidates = 7000``, the default), faiss ``IndexFlatIP`` (exact) and
faiss ``IndexIVFFlat`` (:func:`dmlp.graph.faiss_knn_search`: sqrt N lists, each query probing
its own nearest lists) with the same 7,000 candidates per row, and with twice as many.  Recall is measured on 2,000 seeded query rows
against their exact top-k; exact searches over all rows are timed only where they take under
about a minute here (otherwise on the query rows, scaled to all rows, and marked so).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.hardware import machine_info  # noqa: E402
from benchmarks.loader import DEFAULT_DATA, require_cifar  # noqa: E402
from benchmarks.output import md_table  # noqa: E402
from dmlp.cli import ArgumentParser, run_cli  # noqa: E402
from dmlp.graph import exact_knn_search, faiss_knn_search, knn_search  # noqa: E402

CANDIDATES = 7000
N_QUERIES = 2000


def projected_features(folder: str, dims: int = 256) -> np.ndarray:
    """The shared features as the decision's graph sees them: scaled, PCA-``dims``."""
    from dmlp.scaling import fit_feature_scaling
    X = np.load(require_cifar(folder) / "trainfeatures.npy")
    X = fit_feature_scaling(X, method="rms").apply(X)
    X -= X[:8192].mean(0)
    _, vectors = np.linalg.eigh(X[:8192].T.astype(np.float64) @ X[:8192])
    return np.ascontiguousarray(X @ vectors[:, -dims:][:, ::-1].astype(np.float32))


def clustered_features(n: int, d: int = 256, seed: int = 0) -> np.ndarray:
    """``n`` rows around 700 modes (14 classes x 50) with isotropic noise (std 1.5) that
    overlaps neighbouring modes, so the search is not trivial."""
    g = torch.Generator().manual_seed(seed)
    modes = torch.randn(14, 1, d, generator=g) * 1.0 + torch.randn(14, 50, d, generator=g) * 0.7
    modes = modes.view(-1, d)
    out = torch.empty(n, d)
    for s in range(0, n, 65536):
        e = min(n, s + 65536)
        pick = torch.randint(0, len(modes), (e - s,), generator=g)
        out[s:e] = modes[pick] + 1.5 * torch.randn(e - s, d, generator=g)
    return out.numpy()


def exact_neighbours_of(Z: torch.Tensor, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k (self excluded) of the ``queries`` rows among all rows of unit-norm ``Z``."""
    out = []
    for s in range(0, len(queries), 256):
        q = torch.as_tensor(queries[s:s + 256])
        sim = Z[q] @ Z.T
        sim[torch.arange(len(q)), q] = -float("inf")
        out.append(sim.topk(k, dim=1).indices.numpy())
    return np.concatenate(out)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row's exact top-k that the search found."""
    return float(np.mean([len(np.intersect1d(a, b)) / truth.shape[1] for a, b in zip(found, truth)]))


def _faiss_without_self(I: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    out = np.empty((len(I), k), dtype=np.int64)
    for r, (ids, row) in enumerate(zip(I, rows)):
        ids = ids[(ids != row) & (ids >= 0)]
        out[r] = np.pad(ids[:k], (0, max(0, k - len(ids[:k]))), constant_values=-1)
    return out


def measure(X: np.ndarray, k: int, seed: int = 0) -> list:
    """One table row per method: seconds for all rows, recall@k on the query rows."""
    import faiss
    n = len(X)
    Z = torch.nn.functional.normalize(torch.from_numpy(X), dim=1)
    Zn = Z.numpy()
    queries = np.random.default_rng(seed).choice(n, size=min(N_QUERIES, n), replace=False)
    t = time.perf_counter()
    truth = exact_neighbours_of(Z, queries, k)
    t_truth = time.perf_counter() - t
    rows = []
    if n <= 100_000:
        t = time.perf_counter()
        idx, _ = exact_knn_search(Z, k)
        rows.append(("exhaustive (torch, dmlp.graph.exact_knn_search)", time.perf_counter() - t,
                     recall(idx[queries], truth), ""))
    else:
        rows.append(("exhaustive (torch, dmlp.graph.exact_knn_search)", t_truth * n / len(queries), 1.0,
                     f"timed on {len(queries)} query rows, scaled to {n}"))
    for dtype in (torch.float32, torch.bfloat16):
        t = time.perf_counter()
        idx, _ = knn_search(Z.to(dtype), k, seed, candidates=CANDIDATES)
        rows.append((f"inverted file (dmlp.graph.knn_search, {str(dtype)[6:]})", time.perf_counter() - t,
                     recall(idx.numpy()[queries], truth), f"{CANDIDATES} candidates"))
    threads = faiss.omp_get_max_threads()
    flat = faiss.IndexFlatIP(Zn.shape[1])
    flat.add(Zn)
    if n <= 100_000:
        t = time.perf_counter()
        _, I = flat.search(Zn, k + 1)
        rows.append(("faiss IndexFlatIP (exact)", time.perf_counter() - t,
                     recall(_faiss_without_self(I[queries], queries, k), truth), f"{threads} threads"))
    else:
        t = time.perf_counter()
        _, I = flat.search(Zn[queries], k + 1)
        rows.append(("faiss IndexFlatIP (exact)", (time.perf_counter() - t) * n / len(queries),
                     recall(_faiss_without_self(I, queries, k), truth),
                     f"timed on {len(queries)} query rows, scaled to {n}; {threads} threads"))
    del flat
    for candidates in (CANDIDATES, 2 * CANDIDATES):
        t = time.perf_counter()
        idx, _ = faiss_knn_search(Z, k, seed, candidates=candidates)
        rows.append((f"faiss IndexIVFFlat (dmlp.graph.faiss_knn_search)", time.perf_counter() - t,
                     recall(idx.numpy()[queries], truth),
                     f"{candidates} candidates; train + add + search; {threads} threads"))
    return rows


def main(argv=None) -> int:
    p = ArgumentParser(prog="benchmarks/knn_search.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA, help="CIFAR-10 feature folder (the first size)")
    p.add_argument("--sizes", default="50000,1000000")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    table = []
    for i, n in enumerate(sizes):
        if i == 0:
            X = projected_features(args.data)[:n]
            name = f"CIFAR-10 lite2, PCA-256 ({len(X)} rows)"
        else:
            X = clustered_features(n)
            name = f"synthetic clustered, 256-d ({n} rows)"
        print(f"[knn] {name}", flush=True)
        for method, seconds, r, note in measure(X, args.k):
            print(f"[knn]   {method}: {seconds:.1f} s, recall@{args.k} {r:.4f}", flush=True)
            table.append([name, method, f"{seconds:.1f}", f"{r:.4f}", note])
        del X
    info = machine_info("cpu")
    text = ("# kNN search: recall of the exact top-k and seconds\n\n"
            f"Machine: {info['cpu']} ({info['extensions']}), {info['cores']} cores, torch {torch.__version__}.  "
            "Command: `python benchmarks/knn_search.py "
            + " ".join(argv if argv is not None else sys.argv[1:]) + "`\n\n"
            + md_table(["rows", "method", "seconds", f"recall@{args.k}", "note"], table) + "\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
