"""DMLP: Decoupled Meta Label Purifier (Tu et al., CVPR 2023), reference implementation."""
from .errors import InputError

__all__ = ["InputError"]
__version__ = "0.1.0"
