"""glibc's heap under a run's large arrays: reused within a phase, trimmed between phases, on
transparent huge pages.

A run allocates large arrays afresh again and again: IPC's label gradient (390 MB an epoch at
1,000 classes), EAC's V*C x b logits and their softmax every step, a streamed feature batch
(400 MB at Clothing1M scale) every step.  glibc serves each allocation above its mmap threshold
(at most 32 MiB) with its own ``mmap`` and unmaps it when it is freed, so the kernel faults the
pages in and zeroes them again at every step.  Three remedies, each a no-op off glibc:

- :func:`heap_reuse`: inside the block, large arrays come from the heap and what is freed is
  kept there for the next step's arrays of the same sizes (``mallopt``); at its end the heap
  is trimmed.  The loop runs inside it; ``DMLP_HEAP_REUSE=0`` runs it without.
- :func:`release_freed_memory`: freed heap memory handed back between phases, so one phase's
  temporaries do not stack on the last one's in the resident set.
- :func:`restart_with_huge_pages`: the commands re-execute themselves once with glibc's
  ``glibc.malloc.hugetlb=1`` tunable (glibc 2.35 and later, transparent huge pages in
  ``madvise`` mode), so the heap and the mappings grow on 2 MiB pages: 512 times fewer faults.
  Tunables are read only when a process starts, hence the restart (same command line,
  ``sys.orig_argv``); library callers get the same by starting Python with
  ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``.  A ``GLIBC_TUNABLES`` that already sets
  ``glibc.malloc.hugetlb`` (``=0`` opts out) is left alone.

Nothing changes in the arithmetic; the measured effects are in docs/deviations.md, section D.
"""
from __future__ import annotations

import os
import platform
import sys
from contextlib import contextmanager
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb"
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")

# mallopt's parameters (malloc.h).  Any mallopt call on them fixes glibc's thresholds for the
# rest of the process, so heap_reuse leaves them where glibc's dynamic rule ends once large
# arrays have been freed: mmap threshold 32 MiB, trim threshold twice that, mmap allowed.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
MMAP_THRESHOLD_AFTER, TRIM_THRESHOLD_AFTER, DEFAULT_MMAP_MAX = 32 * 1024 * 1024, 64 * 1024 * 1024, 65536
#: Set to "0" to run without heap_reuse (glibc's allocator left as the process has it).
OFF_SWITCH = "DMLP_HEAP_REUSE"
#: What heap_reuse keeps at the top of the heap for the next allocation instead of trimming it.
REUSE_TRIM_THRESHOLD = 2 ** 31 - 1          # mallopt takes a C int

_libc = None


def _glibc():
    """libc with ``malloc_trim`` and ``mallopt`` (glibc), or None."""
    global _libc
    if _libc is None:
        try:
            import ctypes
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim, _libc.mallopt        # both must exist (AttributeError otherwise)
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Large temporaries (feature chunks, per-batch factorisations) are freed between the phases
    of a run, but glibc keeps freed heap memory mapped, so each phase's temporaries would stack
    on the last ones in the resident set.  Trimming between phases keeps the peak RSS close
    to what is actually alive.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@contextmanager
def heap_reuse():
    """Large arrays allocated in the block come from the heap and, once freed, stay there for
    the block's next allocations (glibc ``mallopt``: no ``mmap``, no trimming); at its end the
    heap is trimmed (:func:`release_freed_memory`) and arrays above 32 MiB are mapped again.

    For a phase that allocates arrays of the same sizes step after step (the loop): each step
    then reuses the memory of the last instead of faulting in fresh pages.  Its resident set
    stays at its high-water mark until the end of the block.  malloc's settings belong to the
    process: after the block its mmap and trim thresholds stay fixed where glibc's dynamic
    rule ends (32 and 64 MiB), and two blocks in two threads at once would undo each other's.
    A no-op off glibc, where ``DMLP_HEAP_REUSE=0``, and where ``GLIBC_TUNABLES`` sets glibc's
    mmap or trim tunables (the user's choice is kept).
    """
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    off = os.environ.get(OFF_SWITCH) == "0" or "mmap_" in tunables or "trim_threshold" in tunables
    libc = None if off else _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, REUSE_TRIM_THRESHOLD)
    try:
        yield
    finally:
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_AFTER)
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_AFTER)
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        release_freed_memory()


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
