"""Run a backbone over an image source and write the feature matrix the purifier reads.

Features are written straight into a memory-mapped ``.npy`` under a temporary name in the
output folder and renamed into place only when every image went through, so a failed or killed
run leaves no (partial) output and a large set never has to fit in RAM.  Extraction is
deterministic: eval mode, no augmentation, a fixed order, one fixed batch size.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..data import load_npy
from ..device import resolve_device
from ..errors import InputError
from ..progress import progress_bar
from ..cli import ArgumentParser
from ..io import save_json
from .backbones import ARCHS, STEMS
from .checkpoints import FORMATS, load_backbone
from .images import ImageSource, is_cifar_input, load_cifar_batches, official_order, scan_folder

# Normalisation presets (per-channel mean/std on [0, 1] pixels).  "cifar" is the one used by
# SupContrast/C2D, DivideMix and leftthomas/SimCLR when training on CIFAR.
NORMS = {
    "cifar": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


def _batch_tensor(images, mean, std, device, name_of) -> torch.Tensor:
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise InputError(f"images of different sizes in one batch ({name_of()}: "
                         f"{sorted(shapes)[:3]}); use --resize and --crop to fix one size")
    x = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean) / std


@torch.no_grad()
def extract(source: ImageSource, model, out_path, *, batch_size=256, device="cpu",
            float16=False, mean=NORMS["cifar"][0], std=NORMS["cifar"][1], resize=None,
            crop=None, progress=True) -> Path:
    """Write ``len(source) x feature_dim`` features to ``out_path`` (atomically)."""
    out_path = Path(out_path)
    device = torch.device(device)
    if device.type == "cuda":
        # Same algorithms every run, so that repeated extractions are byte-identical.
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    model = model.to(device).eval()
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    n, dim = len(source), model.feature_dim
    made = _make_parents(out_path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp.npy", dir=out_path.parent)
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", shape=(n, dim),
                                        dtype=np.float16 if float16 else np.float32)
        bar = progress_bar(total=n, unit="img", enabled=progress, desc="features", leave=True)
        for start in range(0, n, batch_size):
            idx = range(start, min(start + batch_size, n))
            images = [source.load(i, resize, crop) for i in idx]
            x = _batch_tensor(images, mean_t, std_t, device, lambda: source.name(idx[0]))
            feats = model(x).float().cpu().numpy()
            if not np.isfinite(feats).all():
                raise InputError(f"non-finite features for images {idx[0]}..{idx[-1]} "
                                 "(check the checkpoint and the normalisation)")
            out[start:start + len(idx)] = feats
            bar.update(len(idx))
        bar.close()
        out.flush()
        del out
        os.replace(tmp, out_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        for d in made:  # folders this run created, deepest first: leave nothing behind
            try:
                d.rmdir()
            except OSError:
                break
        raise
    return out_path


def _make_parents(folder: Path):
    """mkdir -p, returning the folders it created (deepest first) so a failure can undo it."""
    made = []
    while not folder.exists():
        made.append(folder)
        folder = folder.parent
    for d in reversed(made):
        d.mkdir()
    return made


# ----------------------------------------------------------------------------- command line

def build_parser() -> "ArgumentParser":
    p = ArgumentParser(
        prog="dmlp extract",
        description="Extract label-free features (e.g. trainfeatures.npy / testfeatures.npy) "
                    "from images with a SimCLR/MoCo ResNet checkpoint.")
    p.add_argument("--input", required=True,
                   help="image folder tree root/<class>/<image>, or a CIFAR python batch file "
                        "or folder of batches (data_batch_1..5, test_batch)")
    p.add_argument("--checkpoint", required=True, help="self-supervised checkpoint (.pth/.tar)")
    p.add_argument("--out", required=True, help="output features .npy (N x 512 or N x 2048)")
    p.add_argument("--labels-out", help="also write the labels (from folder names / batches) here")
    p.add_argument("--classes-out", help="also write the class names (index order) as JSON here")
    p.add_argument("--split", choices=("train", "test"), default="train",
                   help="which CIFAR batches to read when --input is a batch folder")
    p.add_argument("--classes", help="comma-separated class folder names in label order "
                                     "(default: sorted folder names)")
    p.add_argument("--file-list", help="text file of <class>/<file> paths relative to --input "
                                       "giving the order (and subset) of images")
    p.add_argument("--official-order", metavar="LABELS_NPY",
                   help="true labels in official order (e.g. correctlabels.npy): place the k-th "
                        "file of class c at the k-th occurrence of c")
    p.add_argument("--checkpoint-format", default="auto", choices=("auto",) + FORMATS)
    p.add_argument("--backbone-prefix", metavar="PREFIX",
                   help="any encoder-plus-heads checkpoint: the key prefix of the backbone (e.g. "
                        "'encoder.', 'online_encoder.net.', 'teacher.backbone.'; '' for top level); "
                        "replaces --checkpoint-format")
    p.add_argument("--drop-heads", metavar="P1,P2", default="",
                   help="with --backbone-prefix: comma-separated key prefixes of heads to drop "
                        "(e.g. 'predictor.,encoder.fc.'); every other key must load strictly")
    p.add_argument("--arch", default="auto", choices=("auto",) + tuple(ARCHS))
    p.add_argument("--stem", default="auto", choices=("auto",) + STEMS,
                   help="cifar: 3x3 conv, no max-pool; imagenet: 7x7/2 conv + max-pool "
                        "(auto: from the checkpoint's conv1 kernel)")
    p.add_argument("--resize", type=int, help="resize the shorter side to this many pixels")
    p.add_argument("--crop", type=int, help="then centre-crop to this square size")
    p.add_argument("--norm", choices=tuple(NORMS), default="cifar",
                   help="mean/std preset (default cifar); --mean/--std override it")
    p.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"))
    p.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto",
                   help="auto (GPU if available), cpu, cuda or cuda:N")
    p.add_argument("--float16", action="store_true", help="store features as float16")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _check_args(args):
    for flag in ("resize", "crop", "batch_size"):
        v = getattr(args, flag)
        if v is not None and v <= 0:
            raise InputError(f"--{flag.replace('_', '-')}: must be positive, got {v}")
    std = args.std or NORMS[args.norm][1]
    if any(s <= 0 for s in std):
        raise InputError(f"--std: must be positive, got {std}")
    if args.official_order and args.file_list:
        raise InputError("--official-order and --file-list both fix the order; give one")
    outs = [Path(x).resolve() for x in (args.out, args.labels_out, args.classes_out) if x]
    if len(set(outs)) != len(outs):
        raise InputError("--out, --labels-out and --classes-out must be different files")


def open_source(args) -> ImageSource:
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if is_cifar_input(args.input):
        if args.file_list or args.official_order or classes:
            raise InputError("--file-list, --official-order and --classes apply to image "
                             "folders; CIFAR batches are already in official order")
        return load_cifar_batches(args.input, args.split)
    source = scan_folder(args.input, classes=classes, file_list=args.file_list)
    if args.official_order:
        true = load_npy(args.official_order, what=f"--official-order {args.official_order}",
                        mmap=False)
        if true.ndim != 1 or true.dtype.kind not in "iu":
            raise InputError(f"--official-order {args.official_order}: expected a 1-D integer "
                             f"label array, got {true.dtype} {true.shape}")
        source = official_order(source, true, f"--official-order {args.official_order}")
    return source


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    try:
        device = resolve_device(args.device)
    except InputError as exc:
        raise exc.for_flags({"device": "--device"}) from None
    # Everything that can be checked before the long run is: inputs, then the checkpoint.
    source = open_source(args)
    model, info = load_backbone(args.checkpoint, args.checkpoint_format, args.arch, args.stem,
                                backbone_prefix=args.backbone_prefix,
                                drop_heads=[h.strip() for h in args.drop_heads.split(",") if h.strip()])
    mean = tuple(args.mean or NORMS[args.norm][0])
    std = tuple(args.std or NORMS[args.norm][1])
    print(f"{len(source)} images, {len(source.class_names)} classes; {info['arch']} "
          f"({info['stem']} stem, {info['format']} checkpoint, {info['dropped_keys']} head keys "
          f"dropped: {info['dropped'] or 'none'}) -> {info['feature_dim']}-d features on {device}", file=sys.stderr)
    extract(source, model, args.out, batch_size=args.batch_size, device=device,
            float16=args.float16, mean=mean, std=std, resize=args.resize, crop=args.crop,
            progress=not args.quiet)
    # Small side files last: they only appear once the features exist.
    if args.labels_out:
        from ..io import save_npy
        save_npy(args.labels_out, source.labels)
    if args.classes_out:
        save_json(args.classes_out, source.class_names, indent=1)
    print(f"wrote {args.out}" + (f" and {args.labels_out}" if args.labels_out else ""),
          file=sys.stderr)
    return 0
