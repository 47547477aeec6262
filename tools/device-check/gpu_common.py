"""Helpers shared by the device-check Python scripts (workload.py, agent_e2e.py, perseus_gpu_e2e.py):
the repo's client package on sys.path, bf16 matmul operands on a GPU, and NVML's energy counter."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]


def use_client_package() -> None:
    """Makes `import perseus` load packages/client-python of this checkout."""
    sys.path.insert(0, str(REPO / "packages" / "client-python"))


def bf16_operands(device_index: int, n: int = 8192, warmup: int = 5) -> tuple[Any, Any, Any]:
    """(device, a, b): two random n×n bf16 matrices on the GPU, after `warmup` products."""
    import torch

    dev = torch.device("cuda", device_index)
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    for _ in range(warmup):
        a @ b
    torch.cuda.synchronize(dev)
    return dev, a, b


def nvml_energy_reader(device_index: int) -> tuple[Any, Callable[[], int]]:
    """(handle, read): NVML's cumulative energy counter of a device, in mJ."""
    import pynvml

    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(device_index)
    return h, lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
