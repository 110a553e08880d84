"""Bad input to ``python DMLP.py``: one line ``error: <file>: <problem>``, exit code 2, nothing written.

Every case starts from a small valid synthetic data folder (10 classes, 600 x 16 float32),
breaks one thing, runs the real CLI in a subprocess and checks: exit code 2, exactly one line on
stderr starting with ``error:`` that contains the expected text, no traceback, no output folder
(and nothing new in the data folder).  A rank-deficient feature matrix is not an error: the
ridge term handles it, the run succeeds and says so in a ``warning:`` line.

``python tests/test_cli_errors.py`` prints the table of cases and real messages used in
docs/errors_and_recovery.md.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import C, D, N, assert_one_line_error, base_args, make_data, run_dmlp


def _load(folder, name):
    return np.load(folder / name)


def _save(folder, name, array):
    np.save(folder / name, array)


# --- the cases: (id, mutate(data_dir, tmp) -> extra CLI args or None, expected text) -------------

def _missing_folder(data, tmp):
    shutil.rmtree(data)


def _missing_labels(data, tmp):
    (data / "trainlabels.npy").unlink()


def _missing_features(data, tmp):
    (data / "trainfeatures.npy").unlink()


def _short_labels(data, tmp):
    _save(data, "trainlabels.npy", _load(data, "trainlabels.npy")[:-1])


def _short_correct(data, tmp):
    _save(data, "correctlabels.npy", _load(data, "correctlabels.npy")[:-3])


def _test_width(data, tmp):
    _save(data, "testfeatures.npy", np.zeros((100, D + 1), np.float32) + 1)


def _label_out_of_range(data, tmp):
    y = _load(data, "trainlabels.npy"); y[5] = C
    _save(data, "trainlabels.npy", y)


def _label_negative(data, tmp):
    y = _load(data, "trainlabels.npy"); y[5] = -1
    _save(data, "trainlabels.npy", y)


def _label_float(data, tmp):
    y = _load(data, "trainlabels.npy").astype(np.float64); y[5] = 1.5
    _save(data, "trainlabels.npy", y)


def _label_string(data, tmp):
    _save(data, "trainlabels.npy", _load(data, "trainlabels.npy").astype(str))


def _label_2d(data, tmp):
    _save(data, "trainlabels.npy", np.zeros((N, 2), np.int64))


def _features_nan(data, tmp):
    X = _load(data, "trainfeatures.npy"); X[7, 3] = np.nan
    _save(data, "trainfeatures.npy", X)


def _features_inf(data, tmp):
    X = _load(data, "trainfeatures.npy"); X[11, 0] = np.inf
    _save(data, "trainfeatures.npy", X)


def _features_int(data, tmp):
    _save(data, "trainfeatures.npy", np.ones((N, D), np.int32))


def _features_zero(data, tmp):
    _save(data, "trainfeatures.npy", np.zeros((N, D), np.float32))


def _truncated(data, tmp):
    path = data / "trainfeatures.npy"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _not_npy(data, tmp):
    (data / "trainfeatures.npy").write_text("id,f1,f2\n1,0.5,0.25\n")


def _empty_file(data, tmp):
    (data / "trainlabels.npy").write_bytes(b"")


def _pickled(data, tmp):
    arr = np.empty(N, dtype=object)
    arr[:] = [int(v) for v in _load(data, "trainlabels.npy")]
    np.save(data / "trainlabels.npy", arr, allow_pickle=True)


def _meta_files_missing_class(data, tmp):
    X = _load(data, "trainfeatures.npy")[:40]
    y = np.arange(40) % C
    y[y == 3] = 4
    _save(data, "metafeatures.npy", X)
    _save(data, "metalabels.npy", y)


def _stray_label_no_class_count(data, tmp):
    """A training label equal to C, with meta files and a config that leaves n_classes to the labels."""
    _meta_files_missing_class(data, tmp)
    _save(data, "metalabels.npy", np.arange(40) % C)
    y = _load(data, "trainlabels.npy"); y[5] = C
    _save(data, "trainlabels.npy", y)
    (tmp / "inferred.toml").write_text('inherit = "default"\nname = "inferred"\n')
    return ["--config", tmp / "inferred.toml"]


def _features_outlier_row(data, tmp):
    X = _load(data, "trainfeatures.npy"); X[123, 4] = 1e30
    _save(data, "trainfeatures.npy", X)


def _meta_outlier_row(data, tmp):
    _meta_files_missing_class(data, tmp)
    X = _load(data, "metafeatures.npy"); X[7, 2] = -1e20
    _save(data, "metafeatures.npy", X)
    _save(data, "metalabels.npy", np.arange(40) % C)


def _correct_all_unknown(data, tmp):
    _save(data, "correctlabels.npy", np.full(N, -1, np.int64))


def _label_bool(data, tmp):
    _save(data, "trainlabels.npy", _load(data, "trainlabels.npy") > 4)


def _meta_files_too_small(data, tmp):
    _save(data, "metafeatures.npy", _load(data, "trainfeatures.npy")[:5])
    _save(data, "metalabels.npy", np.arange(5))


def _meta_files_alone(data, tmp):
    _save(data, "metafeatures.npy", _load(data, "trainfeatures.npy")[:20])


def _meta_width(data, tmp):
    _save(data, "metafeatures.npy", np.ones((20, D - 1), np.float32))
    _save(data, "metalabels.npy", np.arange(20) % C)


def _meta_size_small(data, tmp):
    return ["--meta-size", "5"]


def _meta_size_large(data, tmp):
    return ["--meta-size", str(N)]


def _meta_index_missing_class(data, tmp):
    true = _load(data, "correctlabels.npy")
    idx = np.nonzero(true != 7)[0][:50]
    np.save(tmp / "idx.npy", idx)
    return ["--meta-index", tmp / "idx.npy"]


def _meta_index_range(data, tmp):
    np.save(tmp / "idx.npy", np.array([0, 1, 2, N]))
    return ["--meta-index", tmp / "idx.npy"]


def _meta_index_negative(data, tmp):
    np.save(tmp / "idx.npy", np.array([-1, 1, 2]))
    return ["--meta-index", tmp / "idx.npy"]


def _meta_index_duplicates(data, tmp):
    np.save(tmp / "idx.npy", np.concatenate([np.arange(50), [3]]))
    return ["--meta-index", tmp / "idx.npy"]


def _meta_index_float(data, tmp):
    np.save(tmp / "idx.npy", np.arange(50, dtype=np.float64))
    return ["--meta-index", tmp / "idx.npy"]


def _meta_index_missing_file(data, tmp):
    return ["--meta-index", tmp / "nope.npy"]


def _bad_config_key(data, tmp):
    (tmp / "bad.toml").write_text('inherit = "cifar10_sym20"\nlabel_lrr = 0.1\n')
    return ["--config", tmp / "bad.toml"]


def _bad_config_value(data, tmp):
    (tmp / "bad.toml").write_text('inherit = "cifar10_sym20"\nbatch_size = "big"\n')
    return ["--config", tmp / "bad.toml"]


def _bad_toml(data, tmp):
    (tmp / "bad.toml").write_text('inherit = "cifar10_sym20"\nepochs = = 3\n')
    return ["--config", tmp / "bad.toml"]


def _unknown_config(data, tmp):
    return ["--config", "cifar10_sym21"]


def _cuda(data, tmp):
    return ["--device", "cuda"]


def _bad_device(data, tmp):
    return ["--device", "tpu"]


def _out_is_file(data, tmp):
    (tmp / "afile").write_text("x")
    return ["--out", tmp / "afile"]


def _out_under_file(data, tmp):
    (tmp / "afile").write_text("x")
    return ["--out", tmp / "afile" / "out"]


def _out_cannot_create(data, tmp):
    return ["--out", "/proc/dmlp-test-out/out"]


def _out_not_writable(data, tmp):
    return ["--out", "/proc/self"]      # exists, but no file can be created in it (even as root)


def _bad_epochs(data, tmp):
    return ["--epochs", "two"]


def _zero_epochs(data, tmp):
    return ["--epochs", "0"]


def _unknown_flag(data, tmp):
    return ["--epoks", "3"]


CASES = [
    ("missing data folder", _missing_folder, "data folder not found"),
    ("missing trainlabels.npy", _missing_labels, "trainlabels.npy: file not found"),
    ("missing trainfeatures.npy", _missing_features, "trainfeatures.npy: file not found"),
    ("trainlabels.npy one row short", _short_labels,
     f"trainlabels.npy has {N - 1} rows but trainfeatures.npy has {N}"),
    ("correctlabels.npy three rows short", _short_correct,
     f"correctlabels.npy has {N - 3} rows but trainfeatures.npy has {N}"),
    ("testfeatures.npy wider than trainfeatures.npy", _test_width,
     f"testfeatures.npy has {D + 1} columns but trainfeatures.npy has {D}"),
    ("label out of range", _label_out_of_range,
     f"n_classes = {C}, but trainlabels.npy has label {C} at row 5 (labels must be 0..{C - 1}): correct that label"),
    ("negative label", _label_negative, "trainlabels.npy: negative label -1 at row 5"),
    ("non-integer (float) labels", _label_float, "trainlabels.npy: labels must be integers"),
    ("string labels", _label_string, "trainlabels.npy: labels must be integers"),
    ("2-D labels", _label_2d, "trainlabels.npy: expected a 1-D label vector"),
    ("NaN in features", _features_nan, "trainfeatures.npy: contains NaN or infinite values (first at row 7)"),
    ("inf in features", _features_inf, "trainfeatures.npy: contains NaN or infinite values (first at row 11)"),
    ("integer features", _features_int, "trainfeatures.npy: features must be float16/float32/float64"),
    ("all-zero features", _features_zero, "trainfeatures.npy: every row has the same features"),
    ("truncated .npy", _truncated, "trainfeatures.npy: truncated file"),
    ("not a .npy file (CSV text)", _not_npy, "trainfeatures.npy: not a valid .npy file"),
    ("empty file", _empty_file, "trainlabels.npy: the file is empty (0 bytes)"),
    ("object-dtype (pickled) array", _pickled, "trainlabels.npy: holds an object (pickled) array"),
    ("metalabels.npy lacks a class", _meta_files_missing_class, "metalabels.npy: meta set has no row of class 3"),
    ("stray training label, class count inferred", _stray_label_no_class_count,
     f"metalabels.npy: meta set has no row of class {C} (1 of {C + 1} classes missing; every class needs a clean "
     f"example: add clean rows of those classes with --meta-index, or give them as metafeatures.npy/metalabels.npy; "
     f"the class count {C + 1} is inferred from the largest label, {C}, in trainlabels.npy"),
    ("one corrupt feature row", _features_outlier_row, "trainfeatures.npy: row 123 is an outlier"),
    ("one corrupt metafeatures row", _meta_outlier_row, "metafeatures.npy: row 7 is an outlier"),
    ("correctlabels.npy all unknown", _correct_all_unknown,
     "correctlabels.npy: no row has a known true label (all -1)"),
    ("boolean labels", _label_bool, "trainlabels.npy: labels must be integers, got dtype bool"),
    ("metalabels.npy has fewer rows than classes", _meta_files_too_small,
     f"metalabels.npy: meta set has 5 rows, fewer than the {C} classes"),
    ("metafeatures.npy without metalabels.npy", _meta_files_alone,
     "metafeatures.npy and metalabels.npy must be given together"),
    ("metafeatures.npy narrower than trainfeatures.npy", _meta_width,
     f"metafeatures.npy has {D - 1} columns but trainfeatures.npy has {D}"),
    ("--meta-size smaller than the number of classes", _meta_size_small,
     f"--meta-size 5: meta set has 5 rows, fewer than the {C} classes"),
    ("--meta-size as large as the data", _meta_size_large, f"--meta-size {N}: must be between"),
    ("--meta-index rows lack a class", _meta_index_missing_class,
     "--meta-index idx.npy: meta set has no row of class 7"),
    ("--meta-index out of range", _meta_index_range,
     f"--meta-index idx.npy: row index {N} out of range for {N} training rows"),
    ("--meta-index negative", _meta_index_negative, "--meta-index idx.npy: row index -1 out of range"),
    ("--meta-index with duplicates", _meta_index_duplicates, "--meta-index idx.npy: contains duplicate row indices"),
    ("--meta-index of floats", _meta_index_float, "--meta-index idx.npy: row indices must be integers"),
    ("--meta-index file missing", _meta_index_missing_file, "--meta-index nope.npy: file not found"),
    ("config key that does not exist", _bad_config_key,
     "bad.toml: unknown config key 'label_lrr' (did you mean 'label_lr'? valid keys: audit, auto_meta_fraction"),
    ("config value of the wrong type", _bad_config_value, "bad.toml: config key 'batch_size' must be int"),
    ("config file that is not TOML", _bad_toml, "bad.toml: invalid TOML"),
    ("config name that does not exist", _unknown_config, "config 'cifar10_sym21' not found"),
    ("--device cuda without a GPU", _cuda, "--device cuda: no CUDA GPU is available"),
    ("--device of an unknown kind", _bad_device, "--device tpu: must be auto, cpu or cuda"),
    ("--out is a regular file", _out_is_file, "afile: exists and is not a folder"),
    ("--out below a regular file", _out_under_file, "cannot create the output folder"),
    ("--out cannot be created", _out_cannot_create, "cannot create the output folder"),
    ("--out exists but is not writable", _out_not_writable, "/proc/self: output folder is not writable"),
    ("--epochs not a number", _bad_epochs, "DMLP.py: argument --epochs: invalid int value: 'two'"),
    ("--epochs 0", _zero_epochs, "--epochs must be positive, got 0"),
    ("misspelt flag", _unknown_flag, "DMLP.py: unrecognized arguments: --epoks 3"),
]


def _skip_reason(case_id):
    if case_id.startswith("--device cuda"):
        import torch
        if torch.cuda.is_available():
            return "a CUDA GPU is available here"
    if "--out" in case_id and sys.platform != "linux":
        return "uses /proc to get a folder nobody can write to"
    return None


def run_case(mutate, tmp: Path):
    data = make_data(tmp / "data")
    extra = mutate(data, tmp) or []
    out = tmp / "out"
    if "--out" not in map(str, extra):
        extra = [*extra, "--out", out]
    listing = sorted(p.name for p in data.iterdir()) if data.exists() else None
    proc = run_dmlp(*base_args(data, extra))
    return proc, data, out, listing


@pytest.mark.parametrize("case_id,mutate,needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, mutate, needle, tmp_path):
    reason = _skip_reason(case_id)
    if reason:
        pytest.skip(reason)
    proc, data, out, listing = run_case(mutate, tmp_path)
    assert_one_line_error(proc, needle)
    assert not out.exists(), f"{out} was created: {list(out.iterdir()) if out.is_dir() else ''}"
    if listing is not None:
        assert sorted(p.name for p in data.iterdir()) == listing
    assert not (tmp_path / "afile" / "out").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="runs as root, where chmod does not block writes (the /proc cases cover it)")
def test_out_folder_without_write_permission(tmp_path):
    data = make_data(tmp_path / "data")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        proc = run_dmlp(*base_args(data), "--out", locked / "out")
        assert_one_line_error(proc, "cannot create the output folder (Permission denied)")
        proc = run_dmlp(*base_args(data), "--out", locked)
        assert_one_line_error(proc, "output folder is not writable (Permission denied)")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_bad_input_leaves_existing_out_untouched(tmp_path):
    """An existing (empty or not) OUT gets no new file on bad input."""
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _label_negative(data, tmp_path)
    proc = run_dmlp(*base_args(data), "--out", out)
    assert_one_line_error(proc, "negative label")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_rank_deficient_features_warn_and_succeed(tmp_path):
    """Duplicated feature columns make X'X singular: the ridge term handles it, with a warning."""
    data = make_data(tmp_path / "data")
    X = _load(data, "trainfeatures.npy")
    X[:, D // 2:] = X[:, : D // 2]
    _save(data, "trainfeatures.npy", X)
    out = tmp_path / "out"
    proc = run_dmlp(*base_args(data), "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and all(line.startswith("warning: ") for line in lines), proc.stderr
    assert any("singular" in line and "ridge" in line for line in lines), proc.stderr
    labels = np.load(out / "purified_labels.npy")
    assert labels.shape == (N,) and labels.min() >= 0 and labels.max() < C


def test_valid_synthetic_run_is_quiet(tmp_path):
    """The base of every case above is valid: it runs, and writes nothing on stderr."""
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    proc = run_dmlp(*base_args(data), "--out", out)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["purified_labels.npy", "purified_soft_labels.npy", "label_quality.npy", "meta_indices.npy",
         "noise_file.json", "summary.json"])


if __name__ == "__main__":   # print the docs table: case | message
    import tempfile
    print("| bad input | what `python DMLP.py` prints (exit code) |\n|---|---|")
    for case_id, mutate, _ in CASES:
        if _skip_reason(case_id):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            proc, *_ = run_case(mutate, Path(tmp))
            msg = proc.stderr.strip().replace(tmp, "$TMP").replace("|", "\\|")
            print(f"| {case_id} | `{msg}` ({proc.returncode}) |")
