"""Large allocations on transparent huge pages: a command re-executes itself once with glibc's
``glibc.malloc.hugetlb=1`` tunable.

A run allocates large arrays afresh again and again (a streamed feature batch, 400 MB at
Clothing1M scale, every step; products over N x C at many classes).  glibc maps each with
``mmap`` and the kernel faults its 4 KiB pages in one at a time when they are first written.
Where transparent huge pages are in ``madvise`` mode (the usual Linux default), glibc 2.35 and
later can advise its mappings onto 2 MiB pages (the tunable above), which makes those faults
512 times fewer.  Tunables are read only when a process starts, so the commands start the
interpreter again with the tunable added to ``GLIBC_TUNABLES`` and the same command line
(``sys.orig_argv``).  Nothing changes in the arithmetic; the measured effect is in
docs/deviations.md, section D.  Library callers get the same by starting Python with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``; a ``GLIBC_TUNABLES`` that already sets
``glibc.malloc.hugetlb`` (``=0`` opts out) is left alone.
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb"
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def wants_huge_pages(environ=os.environ, libc=None, thp_mode=None) -> bool:
    """Whether restarting with the tunable would put large allocations on huge pages: Linux,
    glibc >= 2.35, transparent huge pages in ``madvise`` mode (``always`` needs no advice,
    ``never`` allows none), and the tunable not set already."""
    if sys.platform != "linux" or TUNABLE in environ.get("GLIBC_TUNABLES", ""):
        return False
    name, version = libc if libc is not None else platform.libc_ver()
    try:
        if name != "glibc" or tuple(int(x) for x in version.split(".")[:2]) < (2, 35):
            return False
        mode = thp_mode if thp_mode is not None else THP_MODE.read_text()
    except (OSError, ValueError):
        return False
    return "[madvise]" in mode


def restart_with_huge_pages() -> None:
    """Replace this process by the same command with the tunable set, where that helps
    (:func:`wants_huge_pages`); otherwise, or if the restart fails, return and go on."""
    if not wants_huge_pages() or not getattr(sys, "orig_argv", None) or not sys.executable:
        return
    env = dict(os.environ)
    env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), f"{TUNABLE}=1"]))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable] + list(sys.orig_argv[1:]), env)
    except OSError:
        return
