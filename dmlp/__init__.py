"""DMLP: Decoupled Meta Label Purifier (Tu et al., CVPR 2023), reference implementation.

>>> from dmlp import purify_dataset
>>> out = purify_dataset("my_data/", meta_size=1000)   # a folder in the authors' layout  # doctest: +SKIP
>>> from dmlp import purify, load_config
>>> result = purify(features, noisy_labels, meta_features, meta_labels, load_config("default"))  # doctest: +SKIP
"""
import os as _os

# OpenMP threads that wait by sleeping, not spinning: spinning threads take the cores that other
# processes on the machine need (docs/deviations.md D).  Read once, when torch loads: a value
# set by the user, or torch imported before dmlp, wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .config import Config, load_config  # noqa: E402
from .data import Dataset, load_dataset  # noqa: E402
from .errors import InputError  # noqa: E402
from .pipeline import DatasetResult, purify_dataset  # noqa: E402
import sys as _sys
import types as _types


class _Package(_types.ModuleType):
    """``dmlp.purify`` / ``dmlp.PurifyResult`` are loaded on first use (they import torch), so
    ``python DMLP.py`` can validate its inputs and report bad ones without the torch import.
    ``dmlp.purify`` stays the function even when the submodule of the same name is imported."""

    def __getattr__(self, name):
        if name in ("purify", "PurifyResult"):
            import importlib
            module = importlib.import_module(".purify", __name__)
            _types.ModuleType.__setattr__(self, "purify", module.purify)
            _types.ModuleType.__setattr__(self, "PurifyResult", module.PurifyResult)
            return getattr(module, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name == "purify" and isinstance(value, _types.ModuleType):
            return          # the import system binding the submodule: keep the function name
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package

__all__ = ["Config", "Dataset", "DatasetResult", "InputError", "PurifyResult", "load_config", "load_dataset",
           "purify", "purify_dataset"]
__version__ = "0.1.0"
