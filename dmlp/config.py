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


def key(default, toml: str, doc: str):
    """One config key: its default (the default method's value), its TOML name and what it means."""
    return dataclasses.field(default=default, metadata={"toml": toml, "doc": doc})


# --- hyper-parameters per component: each kernel is given its group ------------------------
# The defaults are the default method's (configs/default.toml adds nothing); the paper method is
# the preset configs/paper.toml.  To add a key: one line in its group (default, TOML name, doc).

@dataclass(frozen=True)
class RunSettings:
    """How a run is carried out (not the method): epochs, partition, views, seed, memory, dtype."""
    epochs: int = key(100, "epochs", "training epochs")
    batch_size: int = key(7000, "batch_size", "rows per inner closed-form solve (authors: 7,000)")
    views: int = key(2, "views", "label views that correct each other (authors: 2)")
    seed: int = key(0, "seed", "seed of every random choice of the run")
    n_classes: int = key(0, "n_classes", "class count; 0 = infer from the labels (max label + 1)")
    checkpoint_every: int = key(10, "checkpoint_every", "epochs between resumable checkpoints in OUT (0 = never)")
    checkpoint_seconds: float = key(60.0, "checkpoint_seconds", "and at least this many seconds of the run "
                                    "since the last one: a run shorter than a minute writes none, a long "
                                    "run spends a bounded share of its time writing them")
    resident_limit_gb: float = key(4.0, "resident_limit_gb", "features up to this size (as float32) are held "
                                   "in RAM; larger ones stream batch by batch from the memory map")
    feature_scaling: str = key("rms", "feature_scaling", "units removed before the method sees the features: "
                               "'rms' (centre, unit mean variance), 'standardise' (per column), 'none'")
    compute_dtype: str = key("auto", "compute_dtype", "dtype of the large batch products: 'auto' = bfloat16 on "
                             "CPUs with native bf16 arithmetic (AVX512-BF16/AMX), else float32")


@dataclass(frozen=True)
class MetaParams:
    """The clean meta set, when it is drawn or picked rather than given."""
    size: int = key(1000, "meta_size", "clean rows drawn from the training set (authors: 1,000)")
    auto_fraction: float = key(0.02, "auto_meta_fraction", "--meta auto: fraction of rows picked as the "
                               "confident meta set (at least 4 a class where a fifth of the rows allows, "
                               "at least one a class)")


@dataclass(frozen=True)
class IPCParams:
    """IPC: the closed-form estimator, the meta objective's weights, the labels' Adam."""
    ridge: float = key(1e-6, "ridge", "lambda relative to trace(X'X)/d; raised if Cholesky fails")
    lr: float = key(0.01, "label_lr", "Adam learning rate of the labels")
    betas: tuple = key((0.5, 0.999), "label_betas", "Adam betas of the labels")
    weight_decay: float = key(3e-4, "label_weight_decay", "weight decay of the labels (rows of the batch)")
    update_all_rows: bool = key(False, "label_update_all_rows", "the script's accident: Adam + decay on the "
                                "whole label tensor at every step")
    ce_weight: float = key(1.0, "meta_ce_weight", "weight of the meta cross-entropy")
    mse_weight: float = key(1.0, "meta_mse_weight", "weight of the meta squared error")
    mse_reduction: str = key("sum", "meta_mse_reduction", "'sum' (authors) or 'mean' over meta rows")
    balance_weight: float = key(1.0, "meta_balance_weight", "KL(uniform || mean softmax of batch predictions)")
    balance_rows: int = key(1024, "balance_rows", "batch rows the balance prior is evaluated on (0 = all)")
    support: int = key(0, "label_support", "k: each row's labels live on its given label and the k - 1 top "
                       "classes of a ridge estimator, where k is at most a tenth of the classes (0 = all "
                       "classes; dmlp/support.py)")


@dataclass(frozen=True)
class EACParams:
    """EAC: the auxiliary classifier's loss terms and its Adam schedule."""
    enabled: bool = key(True, "eac", "train the auxiliary classifier")
    lr: float = key(0.006, "eac_lr", "Adam learning rate")
    lr_decay_epoch: int = key(3, "eac_lr_decay_epoch", "lr multiplied by eac_lr_decay from this epoch on")
    lr_decay: float = key(0.1, "eac_lr_decay", "the lr's decay factor")
    confidence_penalty: float = key(0.0, "eac_confidence_penalty", "confidence penalty (paper: 0.4, which "
                                    "lowers accuracy at every setting measured)")
    balance_weight: float = key(1.0, "eac_balance_weight", "the paper's class-balance prior")
    double_softmax: bool = key(False, "eac_double_softmax", "the script's accident: Softmax in the model and "
                               "in the loss")
    forward_correction: bool = key(True, "eac_forward_correction", "EAC models the clean class through T "
                                   "(Patrini et al. 2017)")
    meta_weight: float = key(1.0, "eac_meta_weight", "weight of cross-entropy on the clean meta rows")
    refit_fraction: float = key(0.2, "eac_refit_fraction", "final decision: EAC refitted on the posterior (EM's "
                                "M-step) for this fraction of the loop's epochs (at least one; 0 = none)")


@dataclass(frozen=True)
class ExchangeParams:
    """The EMA exchange of the views' labels through EAC's predictions."""
    every: int = key(20, "relabel_every", "epochs between EMA exchanges of the views (0 = never)")
    momentum: float = key(0.5, "relabel_momentum", "Y <- m * Y + (1 - m) * other view's EAC prediction")
    posterior: bool = key(True, "relabel_posterior", "exchange the posterior p(c|x) T[c, given], not p(c|x)")


@dataclass(frozen=True)
class GraphParams:
    """The kNN feature graph of the final decision and its label propagation."""
    k: int = key(20, "graph_k", "k of the cosine kNN graph (0 = no graph propagation)")
    power: float = key(3.0, "graph_power", "power of the cosine similarities")
    dims: int = key(256, "graph_dims", "wider features: graph on this many PCA dims (0 = raw features)")
    candidates: int = key(7000, "graph_candidates", "rows each row is compared with in the inverted-file kNN "
                          "search (recall vs time; cost ~ N x this x graph_dims)")
    search: str = key("inverted_file", "graph_search", "'inverted_file' (dmlp.graph) or 'faiss' (pip install "
                      "'dmlp[faiss]'; higher recall for the same candidates, about 3x the search time)")
    alpha: float = key(0.9, "graph_alpha", "propagation: weight of the neighbours against the seed")
    steps: int = key(30, "graph_steps", "propagation steps")
    posterior_rounds: int = key(0, "graph_posterior_rounds", "rounds of the graph re-seeded with the posterior")


@dataclass(frozen=True)
class TransitionParams:
    """The noise-transition matrix T[true, given]: smoothing of its counts, EM steps."""
    smoothing: float = key(0.5, "transition_smoothing", "unit of the pseudo-counts (per class of a row) that "
                           "shrink each row of T's counts toward the pooled noise model; their number is "
                           "chosen by marginal likelihood (dmlp.transition.prior_strength; 0 = counts alone)")
    em_steps: int = key(5, "transition_em_steps", "EM steps re-estimating T from all rows' posteriors (final "
                        "decision; > 0 also re-counts T at each EMA exchange; Dawid & Skene 1979)")


@dataclass(frozen=True)
class DecisionParams:
    """The final decision: its rule, and whether the views judge disjoint meta folds."""
    rule: str = key("bayes", "final_decision", "'argmax' of the views' labels (paper), or 'bayes': the "
                    "posterior p(c | x) T[c, given], the given label as evidence")
    cross_fit_meta: bool = key(True, "cross_fit_meta", "view v's meta losses use meta fold v only "
                               "(out-of-fold evidence to calibrate on)")
    heldout_fraction: float = key(0.05, "heldout_fraction", "a cross-fitted classifier on the posterior as one "
                                  "more expert, for this fraction of the loop's epochs (0 = none)")
    exponent_prior_std: float = key(0.3, "exponent_prior_std", "sd of the N(1, sd^2) prior on each expert's "
                                    "exponent in the posterior's fit on the meta rows")
    heldout_rounds: int = key(2, "heldout_rounds", "rounds of the cross-fitted classifier, each fitted afresh on "
                              "the posterior that includes the previous round's prediction (1 = one fit)")
    audit: bool = key(False, "audit", "check the changed labels against a ridge estimator cross-fitted on the "
                      "given labels, and keep the given labels where it finds the purified ones no better "
                      "(dmlp/audit.py; --meta auto turns it on)")
    eac_echo: bool = key(True, "eac_echo_correction", "remove from EAC's in-sample evidence on the training rows "
                         "the bonus it gives each row's own given label, as far as the meta rows' out-of-fold "
                         "likelihood of their given labels shows it (dmlp/echo.py; needs the meta rows' given "
                         "labels)")
    meta_check: bool = key(False, "meta_check", "judge the final model on the meta rows from evidence free of "
                           "their own fold, and keep the given labels where it fixes no more of their given "
                           "labels than it breaks (dmlp.decision.MetaCheck; needs the meta rows' given labels)")


_GROUPS = {"run": RunSettings, "meta": MetaParams, "ipc": IPCParams, "eac": EACParams, "exchange": ExchangeParams,
           "graph": GraphParams, "transition": TransitionParams, "decision": DecisionParams}


@dataclass(frozen=True)
class Config:
    """Every hyper-parameter of a run, in one frozen group per component (``cfg.ipc.ridge``).

    ``Config()`` is the default method; :func:`load_config` reads a shipped preset (``paper``,
    ``cifar10_sym50``, ...) or a TOML file of one's own.  TOML files name the keys flat
    (``ridge``, ``eac_lr``), or per group in tables (``[ipc] ridge = ...``); :data:`KEYS` lists
    them with their group, field and meaning.
    """
    name: str = "default"
    data: str = "labels_cifar10/symmetric20"   # data folder, relative to the repo root or absolute
    run: RunSettings = dataclasses.field(default_factory=RunSettings)
    meta: MetaParams = dataclasses.field(default_factory=MetaParams)
    ipc: IPCParams = dataclasses.field(default_factory=IPCParams)
    eac: EACParams = dataclasses.field(default_factory=EACParams)
    exchange: ExchangeParams = dataclasses.field(default_factory=ExchangeParams)
    graph: GraphParams = dataclasses.field(default_factory=GraphParams)
    transition: TransitionParams = dataclasses.field(default_factory=TransitionParams)
    decision: DecisionParams = dataclasses.field(default_factory=DecisionParams)

    def replace(self, **changes) -> "Config":
        """A copy with ``changes`` (flat TOML key names: ``ridge=1e-3``) applied and validated.

        Raises
        ------
        InputError
            An unknown key or a value of the wrong type.
        """
        changes = _coerce(changes, source="override")
        top = {k: changes.pop(k) for k in ("name", "data") if k in changes}
        for group in _GROUPS:
            fields = {KEYS[k][1]: v for k, v in changes.items() if KEYS[k][0] == group}
            if fields:
                top[group] = dataclasses.replace(getattr(self, group), **fields)
        return dataclasses.replace(self, **top)

    def to_dict(self) -> dict:
        """The flat TOML keys and their values as plain JSON-able types (as summary.json records them)."""
        out = {"name": self.name, "data": self.data}
        for toml, (group, field, _) in KEYS.items():
            if group is not None:
                value = getattr(getattr(self, group), field)
                out[toml] = list(value) if isinstance(value, tuple) else value
        return out


#: ``{TOML key: (group, field, doc)}`` for every key (``name`` and ``data`` have no group).
KEYS = {"name": (None, "name", "the config's name (runs/<data>_<name>)"),
        "data": (None, "data", "data folder, relative to the repository root or absolute")}
for _group_name, _group in _GROUPS.items():
    for _f in dataclasses.fields(_group):
        KEYS[_f.metadata["toml"]] = (_group_name, _f.name, _f.metadata["doc"])
_DEFAULTS = {k: (getattr(getattr(Config(), g), f) if g else getattr(Config(), f)) for k, (g, f, _) in KEYS.items()}
_CHOICES = {"meta_mse_reduction": ("sum", "mean"), "final_decision": ("argmax", "bayes"),
            "compute_dtype": ("auto", "float32", "bfloat16"),
            "feature_scaling": ("rms", "standardise", "none"),
            "graph_search": ("inverted_file", "faiss")}


def _flatten(values: dict, source: str) -> dict:
    """TOML tables of a group (``[ipc] ridge = ...``) as flat keys (``ridge``)."""
    out = {}
    for k, v in values.items():
        if isinstance(v, dict):
            if k not in _GROUPS:
                raise InputError(f"{source}: unknown config table [{k}] (tables: {', '.join(_GROUPS)})")
            fields = {f.name: f.metadata["toml"] for f in dataclasses.fields(_GROUPS[k])}
            for field, value in v.items():
                if field not in fields:
                    raise InputError(f"{source}: unknown key '{field}' in [{k}] (keys: {', '.join(fields)})")
                out[fields[field]] = value
        else:
            out[k] = v
    return out


def _coerce(values: dict, source: str) -> dict:
    out = {}
    for key, value in values.items():
        if key not in KEYS:
            import difflib
            close = [k for k in sorted(KEYS) if k.startswith(key)][:1] or difflib.get_close_matches(key, KEYS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise InputError(f"{source}: unknown config key '{key}' ({hint}valid keys: {', '.join(sorted(KEYS))})")
        expected = type(_DEFAULTS[key])
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
        if key == "label_support" and value != 0 and value < 2:
            raise InputError(f"{source}: config key 'label_support' must be 0 (all classes) or at least 2 "
                             f"(the given label and another class), got {value}")
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
            values = _flatten(tomllib.load(fh), path.name)
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
    config = Config().replace(**_coerce(values, source=path.name))
    changes = {k: v for k, v in overrides.items() if v is not None}
    return config.replace(**changes) if changes else config
