"""DMLP: Decoupled Meta Label Purifier (Tu et al., CVPR 2023), reference implementation.

>>> from dmlp import purify, load_config
>>> result = purify(features, noisy_labels, meta_features, meta_labels, load_config("default"))  # doctest: +SKIP
"""
from .config import Config, load_config
from .errors import InputError
from .purify import PurifyResult, purify

__all__ = ["Config", "InputError", "PurifyResult", "load_config", "purify"]
__version__ = "0.1.0"
