"""Where and in which dtype a run computes: the torch device, and the dtype of the large products."""
from __future__ import annotations

import torch

from .errors import InputError


def resolve_device(device: str) -> torch.device:
    """The torch device named by ``device``.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:<index>"} or None
        ``"auto"`` (or None): the GPU where one is available, else the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    InputError
        ``device`` is of an unknown kind, or names CUDA on a machine without a GPU.  The message
        has ``argument="device"`` (the command line shows its flag there instead).
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("no CUDA GPU is available on this machine (use cpu or auto)",
                         argument="device", value=device)
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError("must be auto, cpu or cuda", argument="device", value=device)
    return torch.device(device)


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX) and torch's kernels
    may use it.

    Then bf16 products run 2-3x faster than float32 ones; emulated, they would be slower.  A
    process whose kernels are capped below AVX-512 (``ATEN_CPU_CAPABILITY=avx2``, as when an
    AVX-512 machine stands in for an AVX2 one) is treated as the capped CPU: float32.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    if torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "NO AVX", "AVX2"):
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_compute_dtype(name: str, device: torch.device) -> torch.dtype:
    """The dtype of the large batch products for the config value ``name``.

    Parameters
    ----------
    name : {"auto", "float32", "bfloat16"}
        ``"auto"``: bfloat16 on a CPU that multiplies it natively (:func:`native_bf16_cpu`),
        float32 elsewhere (GPUs included).
    device : torch.device

    Returns
    -------
    torch.dtype
    """
    if name == "bfloat16":
        return torch.bfloat16
    if name == "auto" and device.type == "cpu" and native_bf16_cpu():
        return torch.bfloat16
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (as summary.json records it)."""
    return str(dtype).replace("torch.", "")
