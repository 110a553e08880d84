"""Config files: inherit chains, unknown keys, types, every shipped config loads."""
from __future__ import annotations


import pytest

from dmlp.config import CONFIG_DIR, Config, load_config
from dmlp.errors import InputError



def _write(path, text):
    path.write_text(text)
    return path


def test_default_inherits_paper_and_overrides():
    paper, default = load_config("paper"), load_config("default")
    assert paper.name == "paper" and default.name == "default"
    assert default.decision.rule == "bayes" and paper.decision.rule == "argmax"
    assert default.run.batch_size == paper.run.batch_size and default.ipc.lr == paper.ipc.lr
    assert default.ipc.betas == paper.ipc.betas == (0.5, 0.999)


def test_three_level_inherit_chain_by_name():
    cfg = load_config("cifar10_sym50")          # -> default -> paper
    default = load_config("default")
    assert cfg.name == "cifar10_sym50" and cfg.run.n_classes == 10
    assert cfg.replace(name="default", data=default.data, n_classes=default.run.n_classes) == default


def test_inherit_chain_from_files(tmp_path):
    base = _write(tmp_path / "base.toml", 'inherit = "paper"\nepochs = 7\nlabel_lr = 0.02\n')
    child = _write(tmp_path / "child.toml", f'inherit = "{base}"\nepochs = 9\n')
    cfg = load_config(str(child))
    assert cfg.run.epochs == 9 and cfg.ipc.lr == 0.02
    assert cfg.exchange.every == load_config("paper").exchange.every


def test_name_defaults_to_file_stem_even_with_inherit(tmp_path):
    child = _write(tmp_path / "mytune.toml", 'inherit = "paper"\nepochs = 9\n')
    assert load_config(str(child)).name == "mytune"


def test_overrides_and_none_passthrough():
    cfg = load_config("paper", epochs=3, seed=None)
    assert cfg.run.epochs == 3 and cfg.run.seed == load_config("paper").run.seed
    with pytest.raises(InputError, match="epochz"):
        load_config("paper", epochz=3)


def test_inherit_relative_path_is_relative_to_the_including_file(tmp_path, monkeypatch):
    _write(tmp_path / "base.toml", 'inherit = "paper"\nepochs = 7\n')
    child = _write(tmp_path / "child.toml", 'inherit = "base.toml"\n')
    monkeypatch.chdir(CONFIG_DIR.parent)
    assert load_config(str(child)).run.epochs == 7


def test_circular_inherit_is_refused(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    _write(a, f'inherit = "{b}"\n')
    _write(b, f'inherit = "{a}"\n')
    with pytest.raises(InputError, match="circular"):
        load_config(str(a))


def test_unknown_key_names_it_and_lists_valid_keys(tmp_path):
    path = _write(tmp_path / "typo.toml", 'inherit = "paper"\nlabel_learning_rate = 0.1\n')
    with pytest.raises(InputError) as err:
        load_config(str(path))
    msg = str(err.value)
    assert "label_learning_rate" in msg and "typo.toml" in msg and "valid keys" in msg
    for key in ("label_lr", "epochs", "ridge", "relabel_momentum"):
        assert key in msg
    assert "\n" not in msg


def test_a_key_cut_short_is_completed_in_the_hint(tmp_path):
    with pytest.raises(InputError, match="did you mean 'eac_echo_correction'"):
        load_config(str(_write(tmp_path / "short.toml", "eac_echo = false\n")))


@pytest.mark.parametrize("line", [
    'epochs = "ten"', "epochs = 2.5", "epochs = true", "eac = 1", 'eac = "yes"', "ridge = true",
    "name = 3", "label_betas = 0.5", 'label_betas = ["a", "b"]', 'final_decision = "vote"',
    'meta_mse_reduction = "median"',
])
def test_wrong_types_are_refused(tmp_path, line):
    key = line.split("=")[0].strip()
    path = _write(tmp_path / "bad.toml", f'inherit = "paper"\n{line}\n')
    with pytest.raises(InputError, match=key):
        load_config(str(path))


def test_string_for_float_key_is_refused(tmp_path):
    path = _write(tmp_path / "bad.toml", 'inherit = "paper"\nridge = "1e-6"\n')
    with pytest.raises(InputError, match="ridge"):
        load_config(str(path))


def test_label_betas_must_have_two_values(tmp_path):
    path = _write(tmp_path / "bad.toml", 'inherit = "paper"\nlabel_betas = [0.5]\n')
    with pytest.raises(InputError, match="label_betas"):
        load_config(str(path))


def test_invalid_toml_is_an_input_error(tmp_path):
    path = _write(tmp_path / "broken.toml", "epochs = = 3\n")
    with pytest.raises(InputError, match="broken.toml"):
        load_config(str(path))


def test_missing_config_name_lists_available():
    with pytest.raises(InputError, match="paper"):
        load_config("no_such_config")


CONFIG_FILES = sorted(CONFIG_DIR.glob("*.toml"))


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_every_shipped_config_loads(path):
    by_name = load_config(path.stem)
    by_path = load_config(str(path))
    assert by_name == by_path
    assert by_name.name == path.stem
    assert by_name.run.epochs > 0 and by_name.run.batch_size > 0 and by_name.run.views >= 1


def test_every_setting_has_a_paper_twin():
    stems = {p.stem for p in CONFIG_FILES}
    assert {"paper", "default"} <= stems
    settings = [s for s in stems if s not in ("paper", "default") and not s.endswith("_paper")]
    assert settings, "no dataset settings in configs/"
    missing = [s for s in settings if f"{s}_paper" not in stems]
    assert not missing, f"settings without a _paper twin: {missing}"
    orphans = [s for s in stems if s.endswith("_paper") and s[:-len("_paper")] not in stems]
    assert not orphans, f"_paper configs without a default twin: {orphans}"
    for s in settings:
        ours, twin = load_config(s), load_config(f"{s}_paper")
        assert (ours.data, ours.run.n_classes) == (twin.data, twin.run.n_classes), s


def test_a_file_without_inherit_refines_the_default(tmp_path):
    """A user's config without ``inherit`` is the default method with its keys changed."""
    cfg = load_config(str(_write(tmp_path / "mine.toml", "epochs = 3\n")))
    assert cfg.replace(name="default", epochs=100) == load_config("default")
    paper = load_config(str(_write(tmp_path / "p.toml", 'inherit = "paper"\nepochs = 3\n')))
    assert paper.replace(name="paper", epochs=100) == load_config("paper")


def test_meta_auto_runs_without_the_held_out_expert():
    """--meta auto calibrates on rows chosen for agreeing with a classifier: no held-out expert."""
    from dmlp.meta import auto_meta_config
    cfg = load_config("default")
    assert cfg.decision.heldout_fraction > 0
    assert auto_meta_config(cfg) == cfg.replace(heldout_fraction=0.0, audit=True)


def test_auto_compute_dtype_follows_the_kernels_torch_may_use(monkeypatch):
    """bfloat16 only where the CPU multiplies it natively and torch's kernels are not capped below
    AVX-512 (``ATEN_CPU_CAPABILITY=avx2`` makes an AVX-512 machine run as an AVX2 one); never on a GPU."""
    import builtins
    import io

    import torch

    from dmlp.device import native_bf16_cpu, resolve_compute_dtype
    flags = "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16\n"
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: io.StringIO(flags) if f == "/proc/cpuinfo" else real_open(f, *a, **k))
    for capability, native in (("AVX512", True), ("AVX2", False), ("DEFAULT", False)):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda c=capability: c)
        assert native_bf16_cpu() is native
        assert resolve_compute_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if native else torch.float32)
        assert resolve_compute_dtype("auto", torch.device("cuda")) == torch.float32
        assert resolve_compute_dtype("float32", torch.device("cpu")) == torch.float32
    flags = "flags\t\t: fpu sse2 avx2 avx512f\n"
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert not native_bf16_cpu()


@pytest.mark.parametrize("value", [1, -3])
def test_a_label_support_of_one_class_or_fewer_is_refused(tmp_path, value):
    path = tmp_path / "bad.toml"
    path.write_text(f"label_support = {value}\n")
    with pytest.raises(InputError, match="label_support' must be 0 .all classes. or at least 2"):
        load_config(str(path))
