"""Where a rank sits, read from the launcher: torchrun (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``TORCHELASTIC_RUN_ID``) or Slurm (``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``,
``SLURM_JOB_ID``), and the job id every rank of a run agrees on.

Parallel ranks follow the Megatron-LM / DeepSpeed default layout, tensor-parallel fastest, then
data-parallel, then pipeline: ``rank = (pp_rank * dp_degree + dp_rank) * tp_degree + tp_rank``.
The GPU a rank drives (the agent's device index, a physical index on the node) is its local rank's
entry of ``CUDA_VISIBLE_DEVICES`` (Slurm sets it from the step's GPUs; ``SLURM_STEP_GPUS`` is used
when a task sees a single renumbered device).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    """A rank's position: global rank, world size, local rank on its node, and its GPU index."""

    rank: int
    world_size: int
    local_rank: int
    device_id: int
    launcher: str
    """``"torchrun"``, ``"slurm"`` or ``"single"`` (no launcher: one process)."""


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _device_list(value: str | None) -> list[int] | None:
    if not value:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not all(v.isdigit() for v in items):
        return None  # UUIDs or MIG names: no index to give the agent
    return [int(v) for v in items]


def device_for(local_rank: int, env: Mapping[str, str]) -> int:
    """The physical GPU index of ``local_rank`` on its node (see the module docstring)."""
    visible = _device_list(env.get("CUDA_VISIBLE_DEVICES"))
    step = _device_list(env.get("SLURM_STEP_GPUS") or env.get("SLURM_JOB_GPUS"))
    if env.get("CUDA_VISIBLE_DEVICES") and visible is None:
        raise ValueError("CUDA_VISIBLE_DEVICES names devices by UUID; pass device_id (the GPU's index on the node)")
    if visible is not None and len(visible) > local_rank:
        if len(visible) == 1 and step is not None and len(step) > local_rank and visible[0] == 0:
            return step[local_rank]  # one GPU bound per task, renumbered 0 inside the task
        return visible[local_rank]
    if step is not None and len(step) > local_rank:
        return step[local_rank]
    return local_rank


def placement(env: Mapping[str, str] | None = None) -> Placement:
    """This process's placement from torchrun's or Slurm's variables (torchrun first)."""
    e = os.environ if env is None else env
    rank, world = _int(e, "RANK"), _int(e, "WORLD_SIZE")
    if rank is not None and world is not None:
        local = _int(e, "LOCAL_RANK") or 0
        return Placement(rank, world, local, device_for(local, e), "torchrun")
    rank, world = _int(e, "SLURM_PROCID"), _int(e, "SLURM_NTASKS")
    if rank is not None and world is not None:
        local = _int(e, "SLURM_LOCALID") or 0
        return Placement(rank, world, local, device_for(local, e), "slurm")
    return Placement(0, 1, 0, device_for(0, e), "single")


def launcher_job_id(env: Mapping[str, str] | None = None) -> str | None:
    """The run's id from its launcher: ``TORCHELASTIC_RUN_ID``, else Slurm's job (and step) id."""
    e = os.environ if env is None else env
    run = e.get("TORCHELASTIC_RUN_ID")
    if run and run != "none":
        return run
    job = e.get("SLURM_JOB_ID")
    if job:
        step = e.get("SLURM_STEP_ID")
        return f"slurm-{job}" + (f".{step}" if step else "")
    return None


def agreed_job_id(world_size: int) -> str:
    """A fresh job id the ranks agree on when no launcher gives one: rank 0 draws it and
    torch.distributed (already initialised by the trainer) broadcasts it. One process needs no
    agreement. Without either, the ranks cannot agree: pass ``job_id`` or set ``PERSEUS_JOB_ID``."""
    fresh = f"perseus-{uuid.uuid4().hex[:16]}"
    if world_size == 1:
        return fresh
    # torch only if the trainer imported it: the client never imports a framework itself.
    dist = getattr(sys.modules.get("torch"), "distributed", None)
    if dist is not None and dist.is_available() and dist.is_initialized():
        box = [fresh]
        dist.broadcast_object_list(box, src=0)
        return str(box[0])
    raise ValueError(
        "no job id: pass job_id, set PERSEUS_JOB_ID, run under torchrun (TORCHELASTIC_RUN_ID) or Slurm (SLURM_JOB_ID), "
        "or initialise torch.distributed first so the ranks can agree on a fresh one"
    )
