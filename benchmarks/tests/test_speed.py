"""The speed benchmark's per-hardware table (benchmarks/speed.py) on a 2,000-row folder, 2 epochs."""
import pytest
import torch

import bench_helpers
from bench_helpers import one_thread  # noqa: F401 (a fixture)
from benchmarks.hardware import EXTENSIONS, cpu_extensions, cpu_model
from benchmarks.loader import load_cifar
from benchmarks.measure import PHASES
from benchmarks.speed import SPEED_COLUMNS, run_speed, speed_table


@pytest.fixture(scope="module")
def speed_rows(tmp_path_factory):
    import torch
    folder = bench_helpers.cifar_like(tmp_path_factory.mktemp("speed") / "data", n=2000, d=64)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_speed(load_cifar(folder), meta_size=200, epochs=2, device="cpu", repeats=1)
    finally:
        torch.set_num_threads(before)


def _cells(table: str):
    lines = [l for l in table.splitlines() if l.startswith("|")]
    split = [[c.strip() for c in l.strip("|").split("|")] for l in lines]
    return split[0], [dict(zip(split[0], r)) for r in split[2:]]


def test_table_names_the_hardware_and_every_phase(speed_rows):
    header, rows = _cells(speed_table(speed_rows))
    assert header == SPEED_COLUMNS
    for col in ("CPU", "vector extensions", "compute dtype", "threads", "total (s)", "wall (s)"):
        assert col in header
    assert [f"{p} (s)" for p in ("setup", "read", "ipc", "eac", "report", "checkpoint", "final")] == \
        [c for c in header if c.endswith(" (s)") and c not in ("total (s)", "wall (s)")]
    assert [r["config"] for r in rows] == ["default", "paper"]
    for r in rows:
        assert r["CPU"] == cpu_model() and r["threads"] == "1" and r["rows"] == "1800" and r["epochs"] == "2"
        assert r["compute dtype"] in ("float32", "bfloat16")
        flags, kernels = r["vector extensions"].split("; kernels ")
        assert flags == (" ".join(cpu_extensions()) or "none of " + "/".join(EXTENSIONS))
        assert kernels.split()[0] == torch.backends.cpu.get_cpu_capability()


def test_phases_add_up_to_the_total(speed_rows):
    for row in speed_rows:                     # unrounded: the timings' own sum
        assert sum(row[f"{p}_s"] for p in PHASES) == pytest.approx(row["total_s"], abs=0.02)
        assert row["wall_s"] >= row["total_s"]
    _, printed = _cells(speed_table(speed_rows))
    for r in printed:                          # as printed: within the rounding of 8 two-decimal cells
        phases = sum(float(r[f"{p} (s)"]) for p in PHASES)
        assert abs(phases - float(r["total (s)"])) <= 0.02 + 8 * 0.005


def test_compute_dtype_is_what_ran(speed_rows, tmp_path, one_thread):
    from dmlp.device import native_bf16_cpu
    assert {r["compute_dtype"] for r in speed_rows} == {"bfloat16" if native_bf16_cpu() else "float32"}
    data = load_cifar(bench_helpers.cifar_like(tmp_path / "data", n=600, d=16))
    forced = run_speed(data, meta_size=100, epochs=1, configs=("paper",), overrides={"compute_dtype": "float32"})
    assert [r["compute_dtype"] for r in forced] == ["float32"]


def test_cpu_model_and_extensions_read_proc_cpuinfo(tmp_path, monkeypatch):
    import builtins
    from benchmarks import hardware
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse avx2 avx512f amx_bf16\n")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: real_open(info if f == "/proc/cpuinfo" else f, *a, **k))
    assert hardware.cpu_model() == "Test CPU 9000"
    assert hardware.cpu_extensions() == ["avx2", "avx512f", "amx_bf16"]
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert hardware.extensions_text() == "avx2 avx512f amx_bf16; kernels AVX2 (capped: ATEN_CPU_CAPABILITY=avx2)"
