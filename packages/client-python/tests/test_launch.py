"""Ranks, GPUs and job ids from torchrun's and Slurm's environment; a rank built from the
environment alone opens its session on the right GPU of a real agent."""

from __future__ import annotations

import logging

import grpc
import pytest

import perseus
from fixtures_client import A100_CLOCKS, RestartableServer, WarningCounter, wait_until
from perseus.agent.v1 import agent_pb2, agent_pb2_grpc
from perseus.launch import Placement, agreed_job_id, device_for, launcher_job_id, placement

SLURM = {"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8", "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "CUDA_VISIBLE_DEVICES": "2,3"}
TORCHRUN = {"RANK": "3", "LOCAL_RANK": "3", "WORLD_SIZE": "4", "TORCHELASTIC_RUN_ID": "run-7", "CUDA_VISIBLE_DEVICES": "4,5,6,7"}


def test_placement_from_slurm_and_torchrun() -> None:
    assert placement(SLURM) == Placement(rank=5, world_size=8, local_rank=1, device_id=3, launcher="slurm")
    assert launcher_job_id(SLURM) == "slurm-4242.0"
    assert placement(TORCHRUN) == Placement(rank=3, world_size=4, local_rank=3, device_id=7, launcher="torchrun")
    assert launcher_job_id(TORCHRUN) == "run-7"
    # torchrun inside a Slurm allocation: torchrun's ranks and run id win.
    assert placement({**SLURM, **TORCHRUN}).launcher == "torchrun"
    assert launcher_job_id({**SLURM, **TORCHRUN}) == "run-7"
    assert placement({}) == Placement(0, 1, 0, 0, "single")
    assert launcher_job_id({}) is None


def test_gpu_binding() -> None:
    # One GPU bound per task and renumbered 0 inside it: the step's list names the physical one.
    assert device_for(1, {"CUDA_VISIBLE_DEVICES": "0", "SLURM_STEP_GPUS": "4,6"}) == 6
    assert device_for(0, {"SLURM_STEP_GPUS": "1,3"}) == 1
    assert device_for(2, {}) == 2
    with pytest.raises(ValueError, match="by UUID; pass device_id"):
        device_for(0, {"CUDA_VISIBLE_DEVICES": "GPU-8a1f"})
    with pytest.raises(ValueError, match="SLURM_PROCID must be an integer, got 'x'"):
        placement({"SLURM_PROCID": "x", "SLURM_NTASKS": "2"})


def test_job_id_needs_agreement_beyond_one_process() -> None:
    a, b = agreed_job_id(1), agreed_job_id(1)
    assert a != b and a.startswith("perseus-")
    with pytest.raises(ValueError, match="no job id: pass job_id"):
        agreed_job_id(4)  # torch.distributed is not initialised in this test process


def test_parallel_ranks_follow_the_megatron_layout() -> None:
    # world 8 = pp 2 x dp 2 x tp 2; rank 5 = (pp 1 * dp 2 + dp 0) * tp 2 + tp 1.
    opt = perseus.PipelineFrequencyOptimizer.from_environment(
        "127.0.0.1:1", pp_degree=2, tp_degree=2, env=SLURM, num_microbatches=4, start=False, sync="none",
    )
    assert (opt.rank, opt.pp_rank, opt.dp_rank, opt.tp_rank, opt.device_id, opt.job_id) == (5, 1, 0, 1, 3, "slurm-4242.0")
    with pytest.raises(ValueError, match=r"world size 8 \(slurm\) is not a multiple of pp_degree \* tp_degree = 3"):
        perseus.PipelineFrequencyOptimizer.from_environment("127.0.0.1:1", pp_degree=3, env=SLURM, num_microbatches=4, start=False)


def test_a_slurm_rank_needs_only_the_url_and_degrees(restartable_server: RestartableServer, client_logger: tuple[logging.Logger, WarningCounter]) -> None:
    logger, _ = client_logger
    restartable_server.start()
    env = {"SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NTASKS": "1", "SLURM_JOB_ID": "777", "CUDA_VISIBLE_DEVICES": "0", "SLURM_STEP_GPUS": "6"}
    opt = perseus.PipelineFrequencyOptimizer.from_environment(
        restartable_server.address, pp_degree=1, env=env, num_microbatches=2, sync="none", supported_frequencies_mhz=A100_CLOCKS, logger=logger,
    )
    try:
        assert wait_until(lambda: opt.status().agent_connected, 30)
        stub = agent_pb2_grpc.GpuAgentStub(grpc.insecure_channel(restartable_server.address))
        lease = stub.ListDevices(agent_pb2.ListDevicesRequest(), timeout=10).devices[6].lease
        assert (lease.job_id, lease.rank.rank) == ("slurm-777", 0)
    finally:
        opt.close(timeout_s=3)
