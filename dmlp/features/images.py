"""Image sources for feature extraction: an image folder tree or CIFAR's python pickle batches.

A source is an ordered list of images with integer labels and class names.  Images are decoded
lazily (``load``), so a folder of a million JPEGs costs only its file list in memory.

Folder tree: ``root/<class name>/<file>.jpg|png|...``.  Classes are the sorted sub-folder names
(ImageFolder's rule, which for CIFAR-10 gives the usual airplane..truck numbering) unless
``classes`` gives the order.  Within a class files are sorted naturally (``2.jpg`` before
``10.jpg``), so the k-th file is the k-th image of that class when files are numbered.

CIFAR batches: the python pickles ``data_batch_1..5`` / ``test_batch`` (CIFAR-10) or
``train`` / ``test`` (CIFAR-100).  They are read with an unpickler that only rebuilds numpy
arrays, never arbitrary objects.
"""
from __future__ import annotations

import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


@dataclass
class ImageSource:
    """Ordered images + labels.  Exactly one of ``paths`` / ``arrays`` is set."""
    labels: np.ndarray
    class_names: List[str]
    paths: Optional[List[Path]] = None
    arrays: Optional[np.ndarray] = None  # N x H x W x 3 uint8 (CIFAR batches)
    description: str = ""

    def __len__(self):
        return len(self.labels)

    def name(self, i: int) -> str:
        return str(self.paths[i]) if self.paths is not None else f"{self.description}[{i}]"

    def load(self, i: int, resize: Optional[int] = None, crop: Optional[int] = None) -> np.ndarray:
        """Image ``i`` as an H x W x 3 uint8 array after the optional resize / centre crop."""
        if self.arrays is not None:
            img = self.arrays[i]
            if resize is None and crop is None:
                return img
            return _transform(_pil().Image.fromarray(img), resize, crop, self.name(i))
        return load_image(self.paths[i], resize, crop)


# ----------------------------------------------------------------------------- decoding

def _pil():
    try:
        import PIL.Image  # noqa: F401  (optional dependency: pip install dmlp[extract])
        import PIL
    except ImportError:
        raise InputError("reading image files needs Pillow: pip install pillow "
                         "(or pip install 'dmlp[extract]')") from None
    return PIL


def load_image(path, resize=None, crop=None) -> np.ndarray:
    PIL = _pil()
    try:
        with PIL.Image.open(path) as im:
            im = im.convert("RGB")  # grey/palette/RGBA -> 3 channels, forces a full decode
    except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, SyntaxError...
        raise InputError(f"image {path}: cannot be read ({exc.__class__.__name__})") from None
    return _transform(im, resize, crop, str(path))


def _transform(im, resize, crop, name) -> np.ndarray:
    PIL = _pil()
    if resize:
        # Shorter side to `resize`, aspect kept (torchvision Resize(int) semantics).
        w, h = im.size
        if w <= h:
            size = (resize, max(1, round(h * resize / w)))
        else:
            size = (max(1, round(w * resize / h)), resize)
        if size != im.size:
            im = im.resize(size, PIL.Image.BILINEAR)
    if crop:
        w, h = im.size
        if w < crop or h < crop:
            raise InputError(f"image {name}: {w}x{h} is smaller than --crop {crop}; add --resize")
        left, top = int(round((w - crop) / 2.0)), int(round((h - crop) / 2.0))
        im = im.crop((left, top, left + crop, top + crop))
    return np.asarray(im, dtype=np.uint8)


# ----------------------------------------------------------------------------- folder trees

def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS


def _class_dirs(root: Path, classes: Optional[Sequence[str]]) -> List[str]:
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if classes is None:
        if not found:
            raise InputError(f"input folder {root}: no class sub-folders (expected "
                             f"{root}/<class>/<image>)")
        return found
    classes = list(classes)
    if len(set(classes)) != len(classes):
        raise InputError("--classes: a class name is repeated")
    absent = [c for c in classes if c not in found]
    if absent:
        raise InputError(f"--classes: no folder for {', '.join(absent[:5])} in {root}")
    return classes


def scan_folder(root, classes: Optional[Sequence[str]] = None,
                file_list=None) -> ImageSource:
    """Images of ``root/<class>/*`` in class order, files in natural order within a class.

    ``file_list`` (a text file of paths relative to ``root``, one per line, ``#`` comments)
    instead fixes the order and the subset; the label is still the first folder of each path.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"input folder {root}: not found")
    if not root.is_dir():
        raise InputError(f"input {root}: not a folder (and not a CIFAR batch file)")
    class_names = _class_dirs(root, classes)
    index = {c: i for i, c in enumerate(class_names)}
    if file_list is not None:
        paths, labels = _read_file_list(root, Path(file_list), index)
    else:
        paths, labels = [], []
        for c in class_names:
            files = sorted((p for p in (root / c).iterdir() if _is_image(p)),
                           key=lambda p: _natural_key(p.name))
            paths += files
            labels += [index[c]] * len(files)
    if not paths:
        raise InputError(f"input folder {root}: no images found (extensions: "
                         f"{' '.join(IMAGE_EXTENSIONS)})")
    return ImageSource(labels=np.asarray(labels, dtype=np.int64), class_names=class_names,
                       paths=paths, description=str(root))


def _read_file_list(root: Path, list_path: Path, index) -> tuple:
    if not list_path.is_file():
        raise InputError(f"--file-list {list_path}: file not found")
    paths, labels = [], []
    for lineno, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        rel = Path(line)
        if rel.is_absolute() or ".." in rel.parts or len(rel.parts) < 2:
            raise InputError(f"--file-list {list_path} line {lineno}: {line!r} must be "
                             f"<class>/<file> relative to the input folder")
        if rel.parts[0] not in index:
            raise InputError(f"--file-list {list_path} line {lineno}: class folder "
                             f"{rel.parts[0]!r} is not one of the classes")
        path = root / rel
        if not path.is_file():
            raise InputError(f"--file-list {list_path} line {lineno}: {path} not found")
        paths.append(path)
        labels.append(index[rel.parts[0]])
    if not paths:
        raise InputError(f"--file-list {list_path}: lists no files")
    return paths, labels


def official_order(source: ImageSource, true_labels: np.ndarray, what: str) -> ImageSource:
    """Reorder a folder source so the k-th image of class c lands where the k-th c is in
    ``true_labels`` (e.g. CIFAR's ``correctlabels.npy``): the official dataset order, given
    that files are numbered within each class in that order."""
    true_labels = np.asarray(true_labels).astype(np.int64, copy=False).ravel()
    n_cls = len(source.class_names)
    if len(true_labels) != len(source):
        raise InputError(f"{what}: has {len(true_labels)} labels but the folder has "
                         f"{len(source)} images")
    if true_labels.min() < 0 or true_labels.max() >= n_cls:
        raise InputError(f"{what}: labels must lie in 0..{n_cls - 1} ({n_cls} class folders)")
    have = np.bincount(source.labels, minlength=n_cls)
    want = np.bincount(true_labels, minlength=n_cls)
    if not np.array_equal(have, want):
        c = int(np.flatnonzero(have != want)[0])
        raise InputError(f"{what}: class {source.class_names[c]!r} has {want[c]} labels but "
                         f"{have[c]} images in its folder")
    perm = np.empty(len(source), dtype=np.int64)  # perm[new row] = old row
    for c in range(n_cls):
        perm[np.flatnonzero(true_labels == c)] = np.flatnonzero(source.labels == c)
    return ImageSource(labels=source.labels[perm], class_names=source.class_names,
                       paths=[source.paths[i] for i in perm], description=source.description)


# ----------------------------------------------------------------------------- CIFAR pickles

class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds dicts/lists/bytes/ints and numpy arrays; refuses every other global."""
    _reconstruct = np.empty(0).__reduce__()[0]
    _scalar = np.float64(0).__reduce__()[0]
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.multiarray", "scalar"): _scalar,
        ("numpy._core.multiarray", "scalar"): _scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        import codecs
        if (module, name) == ("_codecs", "encode"):
            return codecs.encode  # how protocol-2 pickles written by Python 3 store bytes
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _read_pickle(path: Path):
    try:
        with open(path, "rb") as fh:
            return _NumpyOnlyUnpickler(io.BufferedReader(fh), encoding="bytes").load()
    except Exception as exc:
        raise InputError(f"CIFAR batch {path}: cannot be read as a CIFAR python pickle "
                         f"({exc.__class__.__name__}: {str(exc)[:120]})") from None


def _get(d, key):
    return d.get(key.encode()) if key.encode() in d else d.get(key)


def _batch_files(path: Path, split: str) -> List[Path]:
    if path.is_file():
        return [path]
    train = sorted(path.glob("data_batch_*"), key=lambda p: _natural_key(p.name))
    if train or (path / "test_batch").is_file():  # CIFAR-10
        files = train if split == "train" else [path / "test_batch"]
    else:  # CIFAR-100 names its two pickles plainly
        files = [path / split]
    missing = [p for p in files if not p.is_file()]
    if not files or missing:
        raise InputError(f"CIFAR batches {path}: no {split} batch found "
                         f"({missing[0].name if missing else 'data_batch_*'} missing)")
    return files


def is_cifar_input(path) -> bool:
    """A single file, or a folder holding CIFAR-10/100 batch pickles (not class folders)."""
    path = Path(path)
    if path.is_file():
        return True
    names = ("data_batch_1", "test_batch", "train", "test")
    return path.is_dir() and any((path / n).is_file() for n in names)


def load_cifar_batches(path, split: str = "train") -> ImageSource:
    """Images and labels from CIFAR python pickles (a batch file, or the folder of them)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input {path}: not found")
    datas, labels = [], []
    for f in _batch_files(path, split):
        d = _read_pickle(f)
        if not isinstance(d, dict):
            raise InputError(f"CIFAR batch {f}: not a dict")
        data = _get(d, "data")
        lab = _get(d, "labels")
        if lab is None:
            lab = _get(d, "fine_labels")
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 \
                or data.dtype != np.uint8:
            raise InputError(f"CIFAR batch {f}: 'data' must be an N x 3072 uint8 array")
        if lab is None or len(lab) != len(data):
            raise InputError(f"CIFAR batch {f}: 'labels' missing or not one per image")
        datas.append(data)
        labels.append(np.asarray(lab, dtype=np.int64))
    data = np.concatenate(datas)
    labels = np.concatenate(labels)
    if len(data) == 0:
        raise InputError(f"CIFAR batches {path}: no images")
    if labels.min() < 0:
        raise InputError(f"CIFAR batches {path}: negative labels")
    # Rows are R plane, G plane, B plane of a 32x32 image: to N x H x W x C.
    arrays = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return ImageSource(labels=labels, class_names=_cifar_names(path, int(labels.max()) + 1),
                       arrays=np.ascontiguousarray(arrays), description=str(path))


def _cifar_names(path: Path, n: int) -> List[str]:
    folder = path if path.is_dir() else path.parent
    for meta, key in (("batches.meta", "label_names"), ("meta", "fine_label_names")):
        if (folder / meta).is_file():
            try:
                names = _get(_read_pickle(folder / meta), key)
                names = [x.decode() if isinstance(x, bytes) else str(x) for x in names]
                if len(names) >= n:
                    return names
            except (InputError, TypeError, AttributeError):
                pass
    return [str(i) for i in range(n)]
