"""Configuration: one TOML file per setting, shipped inside the package (``dmlp/configs/``).

The files are read with :mod:`importlib.resources`, so they are found in a source checkout, an
editable install and an installed wheel alike; TOML is parsed by :mod:`tomllib` (Python 3.11+)
or its backport ``tomli`` (Python 3.9 and 3.10).

A config file may name a base with ``inherit = "paper"`` (or any config); its keys override the
base's.  A file of one's own without ``inherit`` refines ``default``, the default method.
Every hyper-parameter of the method lives in :class:`Config`; the CLI overrides the common
ones.  Unknown keys are refused with the list of valid keys, so a typo never passes silently.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Optional

from .errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:                                   # the same parser, as a package, before Python 3.11
    import tomli as tomllib

CONFIG_DIR = Path(str(resources.files(__package__).joinpath("configs")))


def config_names() -> list:
    """Names of the configs shipped with the package, sorted (``default``, ``cifar10_sym50``, ...).

    Returns
    -------
    list of str
        One name per ``.toml`` file in the package's ``configs`` folder.
    """
    folder = resources.files(__package__).joinpath("configs")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


@dataclass(frozen=True)
class Config:
    """Every hyper-parameter of a run, as the TOML files name them (flat keys, frozen).

    Load one with :func:`load_config`; the kernels get their component's group
    (``ipc_params``, ``eac_params``, ``exchange_params``, ``graph_params``,
    ``transition_params``, ``decision_params``, ``run_settings``).
    """
    # --- run -----------------------------------------------------------------------------
    name: str = "default"
    data: str = "labels_cifar10/symmetric20"  # data folder, relative to the repo root or absolute
    epochs: int = 100
    batch_size: int = 7000          # rows per inner closed-form solve (authors: 7,000)
    views: int = 2                  # label views that correct each other (authors: 2)
    seed: int = 0
    n_classes: int = 0              # 0 = infer from the labels (max label + 1)
    checkpoint_every: int = 10      # epochs between resumable checkpoints in OUT (0 = never)
    meta_size: int = 1000           # clean rows drawn from the training set (authors: 1,000)
    resident_limit_gb: float = 4.0  # features up to this size (as float32) are held in RAM;
                                    # larger ones stream batch by batch from the memory map
    feature_scaling: str = "rms"    # units removed before the method sees the features: "rms"
                                    # (centre, unit mean variance), "standardise" (per column), "none"
    compute_dtype: str = "auto"     # dtype of the large batch products: "auto" = bfloat16 on CPUs
                                    # with native bf16 arithmetic (AVX512-BF16/AMX), else float32

    # --- IPC: learnable labels, closed-form inner estimator, meta-gradient update ---------
    ridge: float = 1e-6             # lambda relative to trace(X'X)/d; raised if Cholesky fails
    label_lr: float = 0.01
    label_betas: tuple = (0.5, 0.999)
    label_weight_decay: float = 3e-4
    label_update_all_rows: bool = False  # the script's accident: Adam + decay on the whole tensor
    meta_ce_weight: float = 1.0
    meta_mse_weight: float = 1.0
    meta_mse_reduction: str = "sum"   # "sum" (authors) or "mean" over meta rows
    meta_balance_weight: float = 1.0  # KL(uniform || mean softmax of batch predictions)
    balance_rows: int = 1024          # batch rows the balance prior is evaluated on (0 = all)

    # --- EAC: auxiliary linear classifier that corrects the labels from outside ------------
    eac: bool = True
    eac_lr: float = 0.006
    eac_lr_decay_epoch: int = 3       # lr multiplied by eac_lr_decay from this epoch on
    eac_lr_decay: float = 0.1
    eac_confidence_penalty: float = 0.4
    eac_balance_weight: float = 1.0
    eac_double_softmax: bool = False  # the script's accident: Softmax in the model and in the loss
    eac_forward_correction: bool = False  # train EAC through the noise-transition matrix
    eac_meta_weight: float = 0.0      # weight of cross-entropy on the clean meta rows in EAC
    relabel_every: int = 20           # epochs between EMA exchanges of the views (0 = never)
    relabel_momentum: float = 0.5     # Y <- m * Y + (1 - m) * other view's EAC prediction
    eac_refit_fraction: float = 0.0   # final decision: EAC refitted on the posterior (EM M-step)
                                      # for this fraction of the loop's epochs (at least one)
    heldout_fraction: float = 0.0     # final decision: cross-fitted classifier on the posterior, for this
                                      # fraction of the loop's epochs (0: none; dmlp/heldout.py)
    relabel_posterior: bool = False   # exchange the Bayes posterior p(c|x) T[c, given], not p(c|x)

    # --- additions of the default configuration (see docs/deviations.md) ------------------
    cross_fit_meta: bool = False      # view v's meta losses use meta fold v only (out-of-fold checks)
    final_decision: str = "argmax"    # "argmax" of the views' labels, or "bayes" (see below)
    graph_k: int = 0                  # k of the cosine kNN graph (0 = no graph propagation)
    graph_power: float = 3.0
    graph_dims: int = 256             # wider features: graph on this many PCA dims (0 = raw features)
    graph_candidates: int = 7000      # rows each row is compared with in the inverted-file kNN
                                      # search (recall vs time; cost ~ N x this x graph_dims)
    graph_search: str = "inverted_file"  # kNN search: "inverted_file" (dmlp.graph, batched bf16
                                      # products) or "faiss" (pip install 'dmlp[faiss]'; higher
                                      # recall for the same candidates, about 3x the search time)
    graph_alpha: float = 0.9
    graph_steps: int = 30
    graph_posterior_rounds: int = 0   # rounds of the graph re-seeded with the posterior (final decision)
    transition_smoothing: float = 0.5
    transition_em_steps: int = 0      # EM steps re-estimating T from all rows' posteriors (final
                                      # decision; > 0 also re-counts T at each EMA exchange)

    # --- meta set without clean labels (--meta auto) --------------------------------------
    auto_meta_fraction: float = 0.02  # fraction of rows chosen as the confident meta set

    # --- the same values grouped per component: what each kernel is given -----------------
    run_settings = property(lambda self: _group(self, RunSettings), doc="The :class:`RunSettings`.")
    ipc_params = property(lambda self: _group(self, IPCParams), doc="The :class:`IPCParams`.")
    eac_params = property(lambda self: _group(self, EACParams), doc="The :class:`EACParams`.")
    exchange_params = property(lambda self: _group(self, ExchangeParams), doc="The :class:`ExchangeParams`.")
    graph_params = property(lambda self: _group(self, GraphParams), doc="The :class:`GraphParams`.")
    decision_params = property(lambda self: _group(self, DecisionParams), doc="The :class:`DecisionParams`.")
    transition_params = property(lambda self: _group(self, TransitionParams), doc="The :class:`TransitionParams`.")

    def replace(self, **changes) -> "Config":
        """A copy with ``changes`` applied, validated like a config file's keys.

        Raises
        ------
        InputError
            An unknown key or a value of the wrong type.
        """
        return dataclasses.replace(self, **_coerce(changes, source="override"))

    def to_dict(self) -> dict:
        """The keys and values as plain JSON-able types (as summary.json records them)."""
        out = dataclasses.asdict(self)
        out["label_betas"] = list(self.label_betas)
        return out


# --- hyper-parameters per component --------------------------------------------------------
# Each group names its fields as the component does; ``_KEYS`` maps them to the flat keys of the
# TOML files (and of :class:`Config`), which users write unchanged.

@dataclass(frozen=True)
class RunSettings:
    """How a run is carried out (not the method): epochs, partition, views, seed, memory, dtype."""
    epochs: int
    batch_size: int
    views: int
    seed: int
    resident_limit_gb: float
    compute_dtype: str
    feature_scaling: str
    checkpoint_every: int


@dataclass(frozen=True)
class IPCParams:
    """IPC: the closed-form estimator, the meta objective's weights, the labels' Adam."""
    ridge: float
    lr: float
    betas: tuple
    weight_decay: float
    update_all_rows: bool
    ce_weight: float
    mse_weight: float
    mse_reduction: str
    balance_weight: float
    balance_rows: int


@dataclass(frozen=True)
class EACParams:
    """EAC: the auxiliary classifier's loss terms and its Adam schedule."""
    enabled: bool
    lr: float
    lr_decay_epoch: int
    lr_decay: float
    confidence_penalty: float
    balance_weight: float
    double_softmax: bool
    forward_correction: bool
    meta_weight: float
    refit_fraction: float


@dataclass(frozen=True)
class ExchangeParams:
    """The EMA exchange of the views' labels through EAC's predictions."""
    every: int
    momentum: float
    posterior: bool


@dataclass(frozen=True)
class GraphParams:
    """The kNN feature graph of the final decision and its label propagation."""
    k: int
    power: float
    dims: int
    candidates: int
    search: str
    alpha: float
    steps: int
    posterior_rounds: int


@dataclass(frozen=True)
class DecisionParams:
    """The final decision: its rule, and whether the views judge disjoint meta folds."""
    rule: str
    cross_fit_meta: bool
    heldout_fraction: float


@dataclass(frozen=True)
class TransitionParams:
    """The noise-transition matrix T[true, given]: smoothing of its counts, EM steps."""
    smoothing: float
    em_steps: int


_KEYS = {
    RunSettings: {f: f for f in ("epochs", "batch_size", "views", "seed", "resident_limit_gb",
                                 "compute_dtype", "feature_scaling", "checkpoint_every")},
    IPCParams: {"ridge": "ridge", "lr": "label_lr", "betas": "label_betas",
                "weight_decay": "label_weight_decay", "update_all_rows": "label_update_all_rows",
                "ce_weight": "meta_ce_weight", "mse_weight": "meta_mse_weight",
                "mse_reduction": "meta_mse_reduction", "balance_weight": "meta_balance_weight",
                "balance_rows": "balance_rows"},
    EACParams: {"enabled": "eac", "lr": "eac_lr", "lr_decay_epoch": "eac_lr_decay_epoch",
                "lr_decay": "eac_lr_decay", "confidence_penalty": "eac_confidence_penalty",
                "balance_weight": "eac_balance_weight", "double_softmax": "eac_double_softmax",
                "forward_correction": "eac_forward_correction", "meta_weight": "eac_meta_weight",
                "refit_fraction": "eac_refit_fraction"},
    ExchangeParams: {"every": "relabel_every", "momentum": "relabel_momentum",
                     "posterior": "relabel_posterior"},
    GraphParams: {"k": "graph_k", "power": "graph_power", "dims": "graph_dims",
                  "candidates": "graph_candidates", "search": "graph_search", "alpha": "graph_alpha", "steps": "graph_steps",
                  "posterior_rounds": "graph_posterior_rounds"},
    DecisionParams: {"rule": "final_decision", "cross_fit_meta": "cross_fit_meta",
                     "heldout_fraction": "heldout_fraction"},
    TransitionParams: {"smoothing": "transition_smoothing", "em_steps": "transition_em_steps"},
}


def _group(config: Config, group: type):
    return group(**{name: getattr(config, key) for name, key in _KEYS[group].items()})


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_CHOICES = {"meta_mse_reduction": ("sum", "mean"), "final_decision": ("argmax", "bayes"),
            "compute_dtype": ("auto", "float32", "bfloat16"),
            "feature_scaling": ("rms", "standardise", "none"),
            "graph_search": ("inverted_file", "faiss")}


def _coerce(values: dict, source: str) -> dict:
    out = {}
    defaults = Config()
    for key, value in values.items():
        if key not in _FIELDS:
            valid = ", ".join(sorted(_FIELDS))
            raise InputError(f"{source}: unknown config key '{key}' (valid keys: {valid})")
        expected = type(getattr(defaults, key))
        try:
            if expected is tuple:
                if isinstance(value, (str, bytes)) or any(
                        isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
                    raise TypeError
                value = tuple(float(v) for v in value)
                if key == "label_betas" and (len(value) != 2 or not all(0 <= v < 1 for v in value)):
                    raise InputError(f"{source}: config key 'label_betas' must be two numbers in [0, 1), got {list(value)}")
            elif expected is bool:
                if not isinstance(value, bool):
                    raise TypeError
            elif expected is int:
                if isinstance(value, bool) or int(value) != value:
                    raise TypeError
                value = int(value)
            elif expected is float:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise TypeError
                value = float(value)
            elif expected is str:
                if not isinstance(value, str):
                    raise TypeError
        except (TypeError, ValueError):
            raise InputError(f"{source}: config key '{key}' must be {expected.__name__}, got {value!r}") from None
        if key in _CHOICES and value not in _CHOICES[key]:
            raise InputError(f"{source}: config key '{key}' must be one of {_CHOICES[key]}, got {value!r}")
        out[key] = value
    return out


def resolve_config_path(name_or_path: str) -> Path:
    """Find a config file: a bare name (``cifar10_sym50``) is a shipped config, anything else a path.

    Parameters
    ----------
    name_or_path : str
        A shipped config's name, or the path of a ``.toml`` file.

    Returns
    -------
    pathlib.Path
        The file to read.

    Raises
    ------
    InputError
        When neither a file of that path nor a shipped config of that name exists.
    """
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.exists():
            raise InputError(f"{name_or_path}: config file not found")
        return path
    candidate = CONFIG_DIR / f"{name_or_path}.toml"
    if not candidate.exists():
        raise InputError(f"config '{name_or_path}' not found: neither a file nor a shipped config "
                         f"(shipped: {', '.join(config_names())})")
    return candidate


def _read_toml(path: Path, seen: tuple = ()) -> dict:
    if path.resolve() in seen:
        raise InputError(f"{path.name}: circular 'inherit'")
    try:
        with open(path, "rb") as fh:
            values = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path.name}: invalid TOML ({exc})") from None
    base = values.pop("inherit", None)
    if base is None and path.resolve().parent != CONFIG_DIR.resolve():
        base = "default"                   # a user's file refines the default method unless it says otherwise
    if base is None:
        return values
    base_path = Path(base)
    if base_path.suffix == ".toml" and not base_path.is_absolute():
        base_path = path.parent / base_path          # relative to the file that names it
    merged = _read_toml(resolve_config_path(str(base_path)), seen + (path.resolve(),))
    merged.pop("name", None)                         # a config's name is its own, never its base's
    merged.update(values)
    return merged


def load_config(name_or_path: Optional[str] = None, **overrides: Any) -> Config:
    """Load a config by name or path and apply overrides.

    Parameters
    ----------
    name_or_path : str, optional
        A shipped config's name (see :func:`config_names`) or a ``.toml`` path; default
        ``"default"``, the default method.
    **overrides
        Config keys to replace; a value of ``None`` is ignored, so CLI flags that were not
        given pass through.

    Returns
    -------
    Config
        The validated, frozen configuration.

    Raises
    ------
    InputError
        For an unknown name, an unreadable file, an unknown key or a value of the wrong type.
    """
    path = resolve_config_path(name_or_path or "default")
    values = _read_toml(path)
    values.setdefault("name", path.stem)
    config = Config(**_coerce(values, source=path.name))
    changes = {k: v for k, v in overrides.items() if v is not None}
    return config.replace(**changes) if changes else config
