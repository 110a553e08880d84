"""glibc's heap under a run (dmlp.heap): reuse within a phase, the huge-page restart."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from dmlp.heap import wants_huge_pages

MADVISE = "always [madvise] never\n"


@pytest.mark.parametrize("libc, mode, environ, wanted", [
    (("glibc", "2.36"), MADVISE, {}, True),
    (("glibc", "2.35"), MADVISE, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, True),
    (("glibc", "2.34"), MADVISE, {}, False),                        # no such tunable yet
    (("glibc", "2.36"), "[always] madvise never\n", {}, False),      # huge already, no advice needed
    (("glibc", "2.36"), "always madvise [never]\n", {}, False),      # none allowed
    (("glibc", "2.36"), MADVISE, {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, False),   # the user's choice
    (("", ""), MADVISE, {}, False),                                  # musl and others
])
def test_wants_huge_pages(libc, mode, environ, wanted):
    assert wants_huge_pages(environ, libc=libc, thp_mode=mode) is (wanted and sys.platform == "linux")


@pytest.mark.skipif(not wants_huge_pages(), reason="this machine would not restart")
def test_a_command_restarts_once_with_the_tunable_and_its_arguments(tmp_path):
    """The restarted process sees the same command line and the tunable, and does not restart again."""
    script = tmp_path / "probe.py"
    script.write_text("import os, sys\nfrom dmlp.heap import restart_with_huge_pages\n"
                      "print('start', sys.argv[1:], flush=True)\nrestart_with_huge_pages()\n"
                      "print('tunables', os.environ.get('GLIBC_TUNABLES'))\n")
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, str(script), "a b", "c"], env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["start ['a b', 'c']", "start ['a b', 'c']", "tunables glibc.malloc.hugetlb=1"]


def test_main_called_from_python_never_restarts(monkeypatch):
    """Tests and library callers pass argv: the process is theirs, it must never be replaced."""
    import dmlp.__main__ as entry
    monkeypatch.setattr(entry, "restart_with_huge_pages", lambda: pytest.fail("restarted"))
    assert entry.main(["--version"]) == 0


FAULTS = """
import resource
import numpy as np
from dmlp.heap import heap_reuse

def faults(steps=10):
    # a step's large array: allocated, written, freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        a = np.empty(64 << 20, dtype=np.uint8)
        a.fill(1)
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

outside = faults()
with heap_reuse():
    inside = faults()
print(outside, inside, faults())
"""


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
@pytest.mark.parametrize("setting, reused", [({}, True), ({"DMLP_HEAP_REUSE": "0"}, False),
                                              ({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"}, False)])
def test_heap_reuse_faults_a_steps_array_in_once(setting, reused):
    """Inside heap_reuse an array freed at each step is reused by the next: its pages fault in
    once, not at every step; after the block (trimmed, 64 MiB mapped again) they do again.
    DMLP_HEAP_REUSE=0, or a GLIBC_TUNABLES that sets glibc's mmap tunables (the user's choice),
    leaves the allocator alone."""
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "DMLP_HEAP_REUSE")}
    env.update(setting)
    outside, inside, after = map(int, subprocess.run([sys.executable, "-c", FAULTS], env=env, capture_output=True,
                                                      text=True, check=True).stdout.split())
    if reused:
        assert 3 * inside < outside and 3 * inside < after
    else:
        assert 3 * inside > outside
