"""``dmlp benchmark QUESTION`` / ``scripts/benchmark.py QUESTION``: the dispatch to the scripts."""
import importlib

import bench_helpers  # noqa: F401  (the checkout on sys.path)
from benchmarks.cli import QUESTIONS, main


def test_every_question_is_a_script_with_main():
    for module, what in QUESTIONS.values():
        assert callable(importlib.import_module(module).main) and what


def test_help_lists_the_questions(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for q in QUESTIONS:
        assert f"  {q} " in out


def test_old_part_flags_point_to_the_question(capsys):
    assert main(["--speed", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: dmlp benchmark --speed:") and "dmlp benchmark speed" in err


def test_unknown_question(capsys):
    assert main(["speeed"]) == 2
    assert "unknown question 'speeed'" in capsys.readouterr().err


def test_dmlp_benchmark_reaches_the_dispatcher(capsys):
    from dmlp.__main__ import main as dmlp_main
    assert dmlp_main(["benchmark", "--help"]) == 0
    assert "questions:" in capsys.readouterr().out
