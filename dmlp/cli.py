"""Shared plumbing for the command-line entry points (DMLP.py and scripts/)."""
from __future__ import annotations

import sys

from .errors import InputError


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)``; turn :class:`InputError` into one line on stderr and exit code 2."""
    try:
        rc = main(argv)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0 if rc is None else int(rc)
