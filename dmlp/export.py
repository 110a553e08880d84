"""Hand (purified) labels to DivideMix / C2D as the noise file they look for.

Both trainers take labels from a JSON list of N ints in ``--data_path`` and, when the file they
expect is missing, silently generate a fresh random noise file instead.  So the file name must
match theirs character for character:

* DivideMix ``Train_cifar.py``: ``'%s/%.1f_%s.json' % (data_path, r, noise_mode)``, e.g.
  ``0.5_sym.json``;
* C2D ``main_cifar.py``: ``'%s/%.2f_%s.json' % (data_path, r, noise_mode)``, e.g. ``0.50_sym.json``.

The same ``--r`` and ``--noise_mode`` must then be passed to the trainer:
:func:`trainer_command` writes that command line.  Reading such a file back into the authors'
``.npy`` layout is :func:`read_noise_file`.
"""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from .data import check_labels, load_npy
from .errors import InputError
from .data import require_file
from .io import save_noise_file

FORMATS = {"dividemix": "%.1f_%s.json", "c2d": "%.2f_%s.json"}

#: each consumer's name, its CIFAR training script (run from a clone of its repository:
#: LiJunnan1992/DivideMix, ContrastToDivide/C2D) and the arguments it needs besides --dataset,
#: --data_path, --r and --noise_mode ("{classes}": the data set's number of classes).
TRAINERS = {
    "dividemix": ("DivideMix", "Train_cifar.py", ("--num_class", "{classes}")),
    "c2d": ("C2D", "main_cifar.py", ("--experiment-name", "dmlp", "--method", "selfsup",
                                     "--net", "resnet18")),
}
#: the data sets both trainers' CIFAR scripts take, and their number of classes.
DATASETS = {"cifar10": 10, "cifar100": 100}


def noise_file_name(r: float, noise_mode: str, fmt: str) -> str:
    """The bare file name consumer ``fmt`` ('dividemix' or 'c2d') opens for ``r`` and ``noise_mode``."""
    if fmt not in FORMATS:
        raise InputError(f"--format: unknown format {fmt!r} (expected dividemix, c2d or both)")
    if not noise_mode or "/" in noise_mode or noise_mode.strip() != noise_mode:
        raise InputError(f"--noise-mode: {noise_mode!r} cannot be part of a file name")
    return FORMATS[fmt] % (float(r), noise_mode)


def expand_formats(fmt: str) -> list:
    """``'both'`` -> both consumers; otherwise the single named one (validated)."""
    if fmt == "both":
        return list(FORMATS)
    if fmt not in FORMATS:
        raise InputError(f"--format: unknown format {fmt!r} (expected dividemix, c2d or both)")
    return [fmt]


def trainer_command(fmt: str, data_path, r: float, noise_mode: str, dataset: str = "cifar10") -> str:
    """The command line that trains consumer ``fmt`` on the noise file written for ``r`` and
    ``noise_mode`` under ``data_path``.

    The trainer rebuilds the file name from its ``--data_path``, ``--r`` and ``--noise_mode``
    (:data:`FORMATS`) and draws fresh random noise when no file has that name, so these three
    are the ones the file was written with: the folder as an absolute path, ``r`` as the
    shortest decimal that parses back to the same float.

    Parameters
    ----------
    fmt : {"dividemix", "c2d"}
        The consumer.
    data_path : path
        The folder the noise file was written into (the trainer's ``--data_path``).
    r, noise_mode : float, str
        The values the file name was made from (:func:`noise_file_name`).
    dataset : {"cifar10", "cifar100"}
        The trainer's ``--dataset`` (:func:`trainer_dataset`).

    Returns
    -------
    str
        A shell-quoted command, e.g. ``python Train_cifar.py --dataset cifar10 --data_path
        /data/cifar-10-batches-py --r 0.5 --noise_mode sym --num_class 10``.

    Raises
    ------
    InputError
        An unknown ``fmt`` or ``dataset``, or a ``noise_mode`` that cannot be part of a file name.
    """
    noise_file_name(r, noise_mode, fmt)  # validates fmt and noise_mode
    if dataset not in DATASETS:
        raise InputError(f"must be one of {', '.join(DATASETS)}", argument="dataset", value=dataset)
    _, script, extra = TRAINERS[fmt]
    args = ["--dataset", dataset, "--data_path", os.path.abspath(data_path), "--r", repr(float(r)),
            "--noise_mode", noise_mode, *(a.format(classes=DATASETS[dataset]) for a in extra)]
    return shlex.join(["python", script, *args])


def trainer_dataset(labels, dataset: Optional[str] = None, n_classes: Optional[int] = None) -> str:
    """The ``--dataset`` to train on ``labels`` with: ``dataset``, else told by the classes.

    Parameters
    ----------
    labels : numpy.ndarray of int
        The exported labels.
    dataset : {"cifar10", "cifar100"}, optional
        Named by the user; checked against the labels.
    n_classes : int, optional
        The number of classes, when known: more than 10 means CIFAR-100.

    Returns
    -------
    str
        ``"cifar10"`` or ``"cifar100"``: without ``dataset`` or ``n_classes``, CIFAR-100 when a
        label is 10 or more.

    Raises
    ------
    InputError
        A label beyond the data set's classes (the trainer's one-hot targets would fail on it).
    """
    top = int(np.max(labels)) + 1 if len(labels) else 0
    if dataset is None:
        dataset = "cifar100" if max(n_classes or 0, top) > DATASETS["cifar10"] else "cifar10"
    if dataset not in DATASETS:
        raise InputError(f"must be one of {', '.join(DATASETS)}", argument="dataset", value=dataset)
    if top > DATASETS[dataset]:
        raise InputError(f"the labels reach class {top - 1}, but {dataset} has {DATASETS[dataset]} "
                         "classes (DivideMix and C2D train CIFAR-10 or CIFAR-100)",
                         argument="dataset", value=dataset)
    return dataset


def labels_from_npy(path, n_classes: Optional[int] = None, n_rows: Optional[int] = None,
                    rows_of: str = "") -> np.ndarray:
    """Read hard labels from ``path``; an N x C float array (soft labels) is reduced by argmax."""
    path = Path(path)
    arr = load_npy(path, what=f"--labels {path.name}", mmap=False)
    if arr.ndim == 2 and arr.shape[1] > 1:
        if arr.dtype.kind != "f":
            raise InputError(f"--labels {path.name}: 2-D labels must be float class scores, got {arr.dtype}")
        if n_classes is not None and arr.shape[1] != n_classes:
            raise InputError(f"--labels {path.name}: has {arr.shape[1]} class columns, expected {n_classes}")
        arr = np.argmax(arr, axis=1)
    return check_labels(arr, f"--labels {path.name}", n_classes=n_classes, n_rows=n_rows, rows_of=rows_of)


def export_noise_files(labels, data_path, r: float, noise_mode: str,
                       formats: Iterable[str] = ("dividemix",), overwrite: bool = False,
                       mkdir: bool = False) -> list:
    """Write ``labels`` as a JSON noise file under ``data_path`` for each consumer in ``formats``.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        The labels to hand over.
    data_path : path
        The trainer's ``--data_path``; must exist unless ``mkdir`` is true (a typo there would
        otherwise leave the trainer drawing its own random noise).
    r, noise_mode : float, str
        The trainer's ``--r`` and ``--noise_mode``; they make the file name.
    formats : iterable of str
        ``"dividemix"`` and/or ``"c2d"``.
    overwrite : bool
        An existing file is an input of the consumer (maybe the very noise file a published run
        used), so it is only replaced when this is true.
    mkdir : bool
        Create a missing ``data_path``.

    Returns
    -------
    list of pathlib.Path
        The written files, one per consumer in the order of ``formats`` (a repeated consumer
        counts once).
    """
    labels = check_labels(labels, "labels")
    try:
        r = float(r)
    except (TypeError, ValueError):
        raise InputError(f"--r: not a number: {r!r}") from None
    if not (0.0 <= r <= 1.0):
        raise InputError(f"--r: noise rate must be in [0, 1], got {r}")
    data_path = Path(data_path)
    if data_path.exists() and not data_path.is_dir():
        raise InputError(f"--data-path: not a folder ({data_path})")
    if not data_path.exists() and not mkdir:
        raise InputError(f"--data-path: {data_path} does not exist (the trainer would find no noise file "
                         "there); fix the path, or pass --mkdir to create it")
    targets = [data_path / noise_file_name(r, noise_mode, fmt) for fmt in dict.fromkeys(formats)]
    if not overwrite:
        for target in targets:
            if target.exists():
                raise InputError(f"--data-path: {target} already exists (pass --overwrite to replace it)")
    for target in targets:
        save_noise_file(target, labels)
    return targets


def read_noise_file(path, n_rows: Optional[int] = None, n_classes: Optional[int] = None) -> np.ndarray:
    """Read a DivideMix/C2D JSON noise file (a list of N ints) as int64 labels, validated."""
    path = require_file(path, "--from-noise-file", "a JSON file")
    try:
        with open(path, "r", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--from-noise-file {path.name}: not valid JSON ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    if not isinstance(data, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data):
        raise InputError(f"--from-noise-file {path.name}: expected a JSON list of integers")
    return check_labels(np.asarray(data, dtype=np.int64), f"--from-noise-file {path.name}",
                        n_classes=n_classes, n_rows=n_rows, rows_of="correctlabels.npy")


# --- the authors' folder layout, as read by ``DMLP.py --data DIR`` -----------------------------

#: files taken over unchanged from the source folder (the first two are required).
LINKED_FILES = ("trainfeatures.npy", "correctlabels.npy", "testfeatures.npy", "testlabels.npy",
                "metafeatures.npy", "metalabels.npy")
REQUIRED_FILES = ("trainfeatures.npy", "correctlabels.npy")
#: files this module writes into the output folder.
WRITTEN_FILES = ("trainlabels.npy", "noise_file.json", "noise.json")


def link_or_copy(src, dst) -> str:
    """Make ``dst`` a symlink to ``src`` (absolute target), or a copy where links fail.

    Either way ``dst`` is swapped in atomically with ``os.replace``, which replaces a previous
    ``dst`` entry (even a link to an input) without writing through it.  Returns 'link' or 'copy'.
    """
    import os
    import shutil
    import tempfile

    src, dst = Path(src).resolve(), Path(dst)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        try:
            os.symlink(src, tmp)
            how = "link"
        except (OSError, NotImplementedError):  # e.g. Windows without privilege, some FUSE mounts
            shutil.copyfile(src, tmp)
            how = "copy"
        os.replace(tmp, dst)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return how


def check_output_folder(src_dir, out_dir) -> None:
    """Refuse an output folder that is the source folder (we would overwrite its inputs)."""
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out: exists and is not a folder ({out_dir})")
    if out_dir.resolve() == src_dir.resolve():
        raise InputError(f"--out: is the source folder {src_dir}; choose a new folder (inputs are never modified)")


def write_noisy_folder(src_dir, out_dir, noisy_labels, meta: dict) -> dict:
    """Build ``out_dir`` in the authors' layout: new ``trainlabels.npy`` + the source's other files.

    Writes ``trainlabels.npy``, ``noise_file.json`` (the same labels as a DivideMix JSON list)
    and ``noise.json`` (``meta``), and links the files of :data:`LINKED_FILES` present in
    ``src_dir``.  Returns ``{name: 'link'|'copy'}`` for the linked files.
    """
    from .io import save_json, save_npy

    src_dir, out_dir = Path(src_dir), Path(out_dir)
    check_output_folder(src_dir, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    how = {}
    for name in LINKED_FILES:
        if (src_dir / name).exists():
            how[name] = link_or_copy(src_dir / name, out_dir / name)
    save_npy(out_dir / "trainlabels.npy", np.asarray(noisy_labels, dtype=np.int64))
    save_noise_file(out_dir / "noise_file.json", noisy_labels)
    save_json(out_dir / "noise.json", meta, indent=2)
    return how
