"""Feature extraction: turn images + a self-supervised ResNet checkpoint into the
``trainfeatures.npy`` / ``testfeatures.npy`` matrices the purifier reads.

* :mod:`.backbones`   - ResNet-18/34/50 (CIFAR or ImageNet stem) returning pooled features;
* :mod:`.layouts`     - checkpoint key layouts (SupContrast/C2D, SimCLR, MoCo, SimSiam, BYOL,
  DINO, solo-learn, Lightning, lightly): detection and renaming;
* :mod:`.checkpoints` - reading a checkpoint safely and loading its backbone strictly;
* :mod:`.images`      - image folder trees and CIFAR python batches, official-order helper;
* :mod:`.extract`     - the batched, memory-mapped, atomic extraction loop and its CLI.
"""
from .backbones import ResNetFeatures, build_backbone
from .checkpoints import FORMATS, load_backbone
from .extract import extract
from .images import ImageSource, load_cifar_batches, scan_folder

__all__ = ["ResNetFeatures", "build_backbone", "FORMATS", "load_backbone", "extract",
           "ImageSource", "load_cifar_batches", "scan_folder"]
