"""``dmlp benchmark QUESTION [options]`` and ``python scripts/benchmark.py QUESTION [options]``.

Each question is one script of ``benchmarks/``, which also runs on its own
(``python benchmarks/speed.py --quick`` is ``dmlp benchmark speed --quick``)::

    dmlp benchmark quality --quick              # labels against the baselines (the default question)
    dmlp benchmark speed                        # seconds per phase on this hardware
    dmlp benchmark scale --sizes small          # Clothing1M-shaped synthetic data
    dmlp benchmark gpu-check --device cuda      # the prepared GPU check, one call

``dmlp benchmark [options]`` without a question is ``dmlp benchmark quality [options]``.
"""
from __future__ import annotations

import importlib

from dmlp.cli import run_cli
from dmlp.errors import InputError

#: question -> (module, what it answers)
QUESTIONS = {
    "quality": ("benchmarks.quality", "how good are the labels against the baselines (CIFAR-10 settings)?"),
    "speed": ("benchmarks.speed", "how fast is a whole CIFAR-10 run on this hardware, phase by phase?"),
    "scale": ("benchmarks.scale", "does a Clothing1M-scale run (1M x 2048) fit in 10 min and 12 GB?"),
    "feature-sets": ("benchmarks.feature_set_quality", "does the default beat the baselines on other feature sets?"),
    "ablation": ("benchmarks.config_ablation", "what does a config change do to accuracy and agreement?"),
    "ceiling": ("benchmarks.oracle_ceiling", "how far could clean-label evidence and the true T go?"),
    "knn": ("benchmarks.knn_search", "how good and fast is the kNN search against faiss?"),
    "gpu-check": ("benchmarks.gpu_check", "speed, CPU/GPU agreement, 100/1,000 classes and scale in one call"),
}
#: the part flags of the one-script benchmark before it was split, and their question now
OLD_PART_FLAGS = {"--quality": "quality", "--speed": "speed", "--scale": "scale", "--feature-sets": "feature-sets",
                  "--all": "quality, speed and scale"}


def usage() -> str:
    """The text of ``dmlp benchmark --help``."""
    width = max(map(len, QUESTIONS))
    lines = ["usage: dmlp benchmark QUESTION [options]   (dmlp benchmark QUESTION --help for its options)",
             "       (or python scripts/benchmark.py QUESTION ..., or python benchmarks/<script>.py ...)",
             "", "questions:"]
    lines += [f"  {name:<{width}}  {what}  [{module.replace('.', '/')}.py]"
              for name, (module, what) in QUESTIONS.items()]
    lines += ["", "Without a question: quality."]
    return "\n".join(lines)


def dispatch(argv) -> int:
    """Run the question named by ``argv[0]`` with the rest of ``argv``."""
    argv = list(argv)
    if argv and argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    old = next((a.split("=", 1)[0] for a in argv if a.split("=", 1)[0] in OLD_PART_FLAGS), None)
    if old is not None and (not argv or argv[0].startswith("-")):
        raise InputError(f"dmlp benchmark {old}: each part is a question of its own now: dmlp benchmark "
                         f"{OLD_PART_FLAGS[old].replace(', ', ' / ').replace(' and ', ' / ')} [options] "
                         "(dmlp benchmark --help)")
    question = "quality" if not argv or argv[0].startswith("-") else argv.pop(0)
    if question not in QUESTIONS:
        raise InputError(f"dmlp benchmark: unknown question {question!r} (questions: {', '.join(QUESTIONS)})")
    return importlib.import_module(QUESTIONS[question][0]).main(argv)


def main(argv=None) -> int:
    """Run the benchmark with command-line arguments ``argv`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 on success, 2 on bad input (one ``error:`` line on stderr), 1 when the
        environment fails (an ``OSError``), 130 on interruption.
    """
    import sys
    return run_cli(dispatch, sys.argv[1:] if argv is None else argv)
