"""What a benchmark ran on: CPU model, its vector extensions, threads, device, versions.

Timings mean little without the machine: the default's large products run in bfloat16 only on
CPUs that multiply it natively (AVX512-BF16 or AMX), in float32 elsewhere, so the same command
differs by 2-3x between CPUs of the same core count.  Every table header names the machine
(:func:`header`), and the speed table repeats it per row so that tables of several machines can
be pasted together.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
from typing import Dict, List, Sequence

#: The vector extensions that decide the speed of the batch products, in the order printed.
EXTENSIONS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def _cpuinfo_field(name: str) -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_extensions() -> List[str]:
    """Those of :data:`EXTENSIONS` the CPU reports (``/proc/cpuinfo`` flags; [] where unknown)."""
    flags = set(_cpuinfo_field("flags").split())
    return [e for e in EXTENSIONS if e in flags]


#: Environment variables that cap the instruction set of torch's kernels, MKL's and oneDNN's: set
#: to AVX2 on an AVX-512 machine, they make it run the path of a CPU without AVX-512 or native bf16.
ISA_CAPS = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")


def extensions_text() -> str:
    """The CPU's extensions of :data:`EXTENSIONS` and the instruction set torch's kernels run,
    e.g. ``"avx2 avx512f; kernels AVX512"``, with any cap of :data:`ISA_CAPS` that is set."""
    import torch
    caps = [f"{v}={os.environ[v]}" for v in ISA_CAPS if os.environ.get(v)]
    kernels = torch.backends.cpu.get_cpu_capability() + (f" (capped: {', '.join(caps)})" if caps else "")
    return f"{' '.join(cpu_extensions()) or 'none of ' + '/'.join(EXTENSIONS)}; kernels {kernels}"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def device_name(device: str = "cpu") -> str:
    """``"cpu"``, or ``"cuda (NVIDIA H100 80GB HBM3)"`` for a CUDA device."""
    import torch
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(torch.device(device))})"
    return "cpu"


def machine_info(device: str = "cpu") -> Dict[str, str]:
    """Date, CPU model and extensions, cores, torch threads, versions and the device's name."""
    import torch
    return {"date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "cpu": cpu_model(), "extensions": extensions_text(),
            "cores": f"{usable_cores()} usable of {os.cpu_count()}",
            "torch_threads": str(torch.get_num_threads()), "torch": torch.__version__,
            "python": platform.python_version(), "device": device_name(device)}


def header(title: str, script: str, argv: Sequence[str], device: str = "cpu") -> str:
    """A table's Markdown header: title, the command that made it, date, machine, device."""
    info = machine_info(device)
    command = " ".join(["python", script, *map(shlex.quote, argv)])
    return (f"# {title}\n\n"
            f"Command: `{command}`  \n"
            f"Date: {info['date']}  \n"
            f"Machine: {info['cpu']} ({info['extensions']}), {info['cores']} cores (torch threads "
            f"{info['torch_threads']}), torch {info['torch']}, Python {info['python']}  \n"
            f"Device: {info['device']}")
