"""GPU synchronisation before timestamps.

A GPU runs kernels asynchronously: the Python call that launches a forward pass returns long before
the GPU finishes it. Timestamps taken around an instruction are only meaningful after the host
waits for the device, so every hook calls a *sync function* first. Which one depends on the
framework; :func:`make_sync` builds it from a name (``"torch"``, ``"cupy"``, ``"jax"``, ``"none"``,
``"auto"``) or accepts any zero-argument callable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Literal

SyncFn = Callable[[], None]
"""A zero-argument function that blocks until the device has finished all queued work."""

SyncSpec = Literal["auto", "torch", "cupy", "jax", "none"] | SyncFn | None
"""What :class:`perseus.PipelineFrequencyOptimizer` accepts as ``sync``."""


def _no_sync() -> None:
    return None


def _torch_sync(device_id: int) -> SyncFn:
    import torch  # optional dependency, imported only when asked for

    if not torch.cuda.is_available():
        return _no_sync
    device = torch.device("cuda", device_id)

    def sync() -> None:
        torch.cuda.synchronize(device)

    return sync


def _cupy_sync(device_id: int) -> SyncFn:
    import cupy

    device = cupy.cuda.Device(device_id)

    def sync() -> None:
        device.synchronize()

    return sync


def _jax_sync(device_id: int) -> SyncFn:
    import jax

    devices = jax.devices()
    if device_id >= len(devices):
        return _no_sync
    device = devices[device_id]

    def sync() -> None:
        # JAX has no device-wide synchronize; waiting on a trivial computation placed on the device
        # drains its in-order queue, which is what an instruction boundary needs.
        jax.device_put(0, device).block_until_ready()

    return sync


def make_sync(spec: SyncSpec, device_id: int = 0) -> SyncFn:
    """Returns the sync function for ``spec`` on local device ``device_id``.

    ``"auto"`` picks the first framework already imported by the trainer that sees a GPU
    (torch, then cupy, then jax) and otherwise no sync; it never imports a framework itself, so
    a CPU-only trainer pays nothing. ``None`` and ``"none"`` mean no sync.
    """
    if spec is None or spec == "none":
        return _no_sync
    if callable(spec):
        return spec
    if spec == "torch":
        return _torch_sync(device_id)
    if spec == "cupy":
        return _cupy_sync(device_id)
    if spec == "jax":
        return _jax_sync(device_id)
    if spec == "auto":
        if "torch" in sys.modules:
            fn = _torch_sync(device_id)
            if fn is not _no_sync:
                return fn
        if "cupy" in sys.modules:
            try:
                return _cupy_sync(device_id)
            except Exception:  # no usable CUDA device: fall through
                pass
        if "jax" in sys.modules:
            try:
                fn = _jax_sync(device_id)
                if fn is not _no_sync:
                    return fn
            except Exception:
                pass
        return _no_sync
    raise ValueError(f"sync: must be 'auto', 'torch', 'cupy', 'jax', 'none', None or a callable, got {spec!r}")
