"""Shared plumbing for the command-line entry points (DMLP.py and scripts/).

Every entry point runs its ``main`` through :func:`run_cli`, so a problem with the user's input
(an :class:`~dmlp.errors.InputError`, or a bad flag caught by :class:`ArgumentParser`) prints
exactly one line, ``error: <message>``, on stderr and exits with code 2 -- never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from .errors import InputError


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line (``error: ...``) and exit code 2.

    argparse prints the usage block plus the message on a bad flag; here the message is raised
    as :class:`InputError` (with the program name) so :func:`run_cli` prints it like every other
    input error.  ``--help`` is unchanged.
    """

    def error(self, message):
        raise InputError(f"{self.prog}: {message} (see {self.prog} --help)")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error(message: str) -> None:
    """``error: message`` on a line of its own: on a terminal, the line a progress bar was
    drawing when the error came is cleared first."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
    print(f"error: {message}", file=sys.stderr)


def broken_pipe() -> int:
    """The reader of stdout went away (``dmlp --help | head``): nothing to report.  Stdout is
    pointed at the null device so that Python's flush at exit does not complain; exit code 141,
    as a shell reports a pipe's writer killed by SIGPIPE."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)``; turn :class:`InputError` into one line on stderr and exit code 2.

    An ``OSError`` that escapes (disk full, a file vanishing mid-run) is also reported in one
    line, with exit code 1: it is an environment failure, not bad input.
    """
    try:
        rc = main(argv)
    except InputError as exc:
        _error(_one_line(exc))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        return broken_pipe()
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _error(f"{where}{_one_line(exc.strerror or exc)}")
        return 1
    return 0 if rc is None else int(rc)
