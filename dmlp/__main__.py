"""``dmlp`` / ``python -m dmlp``: one command with a subcommand per tool.

    dmlp purify [--data DIR] [--config NAME|PATH] ...   purify the labels of a data folder
    dmlp noise --features-dir SRC --out DIR ...         make a noisy-label data folder
    dmlp export --labels FILE --data-path DIR ...       hand labels to DivideMix / C2D
    dmlp extract --input IMAGES --checkpoint CKPT ...   features from images and a checkpoint
    dmlp sweep SRC WORK [purify flags]                  the noise-rate sweep, one table
    dmlp benchmark [--quick] ...                        quality and speed against the baselines

Each subcommand has its own ``--help``.  Bad input prints one line, ``error: ...``, and exits
with code 2.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

from . import __version__
from .cli import broken_pipe, run_cli
from .heap import restart_with_huge_pages

# subcommand -> (module, what it does); each module has ``main(argv=None, prog=...)``-style
# entry points resolved by :func:`_entry`
COMMANDS = {
    "purify": ("dmlp.run", "purify the labels of a data folder (the main job)"),
    "noise": ("dmlp.tools.make_noisy_labels", "make a noisy-label data folder (sym/asym/instance, CIFAR-N, noise file)"),
    "export": ("dmlp.tools.export_labels", "write labels as the noise file DivideMix / C2D read"),
    "extract": ("dmlp.features.extract", "extract features from images with a self-supervised checkpoint"),
    "sweep": ("dmlp.tools.sweep", "run a list of noise settings (make labels, purify) and write one table"),
    "benchmark": (None, "label quality and speed against the baselines (needs a source checkout)"),
}


#: Commands whose runs allocate large arrays again and again (dmlp/heap.py).
LONG_RUNNING = ("purify", "sweep", "benchmark", "extract")


def usage() -> str:
    """The text of ``dmlp --help``."""
    width = max(map(len, COMMANDS))
    lines = [f"usage: dmlp <command> [options]   (dmlp <command> --help for its options)",
             "", "Decoupled Meta Label Purifier: purify noisy labels from precomputed features.",
             "", "commands:"]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    lines += ["", "  dmlp --version  prints the version"]
    return "\n".join(lines)


def _benchmark_main():
    """The benchmark harness's ``main``: it lives in a source checkout, not in the package.

    Looked for as ``benchmarks/cli.py`` beside the installed package (a source checkout or an
    editable install) and in the current folder; ``None`` when there is none.
    """
    for root in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (root / "benchmarks" / "cli.py").is_file():
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            return importlib.import_module("benchmarks.cli").main
    return None


def _entry(command: str):
    module, _ = COMMANDS[command]
    if module is None:
        return _benchmark_main()
    return importlib.import_module(module).main


def main(argv=None) -> int:
    """Run ``dmlp <command> ARGS``; returns the exit code (141 when the reader of stdout went away)."""
    try:
        return _main(argv)
    except BrokenPipeError:
        return broken_pipe()


def _main(argv=None) -> int:
    """Run ``dmlp <command> ARGS``; returns the exit code.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for bad input, 1 for an environment failure.
    """
    if argv is None and sys.argv[1:2] and sys.argv[1] in LONG_RUNNING:     # its own process, not a call
        restart_with_huge_pages()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"dmlp {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: dmlp: unknown command {command!r} (commands: {', '.join(COMMANDS)}; see dmlp --help)",
              file=sys.stderr)
        return 2
    entry = _entry(command)
    if entry is None:
        print("error: dmlp benchmark: needs a source checkout (the harness is benchmarks/ of the "
              "repository, not part of the installed package); run it from a clone", file=sys.stderr)
        return 2
    return run_cli(entry, rest)


if __name__ == "__main__":
    sys.exit(main())
