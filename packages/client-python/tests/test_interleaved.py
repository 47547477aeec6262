"""Interleaved 1F1B (Megatron-LM's virtual pipeline) in the Python client and the emulated trainer,
against real `perseus serve` processes: Megatron's order, the chunk in the hooks, the check that a
trainer's instructions are the deployed schedule's, and profiles per virtual stage."""

from __future__ import annotations

import logging
import time

import grpc
import pytest
from test_emulate import _run_until_swept

import perseus
from fixtures_client import A100_CLOCKS, A100_PROFILE, RestartableServer, WarningCounter, wait_until
from perseus.common.v1 import common_pb2
from perseus.emulate import EmulationHandle, EmulationSpec, load_profile
from perseus.emulate.model import iteration_time_s
from perseus.profiler.v1 import profiler_pb2, profiler_pb2_grpc
from perseus.schedule import interleaved, stage_order

F, B = "forward", "backward"


def test_megatrons_order_is_the_planners() -> None:
    # The planner's scheduleOrder (packages/planner/src/schedule.ts) for N=2, V=2, M=4.
    assert interleaved(2, 0, 4, 2) == [
        (F, 0, 0), (F, 1, 0), (F, 0, 1), (F, 1, 1), (F, 2, 0), (B, 0, 1), (F, 3, 0), (B, 1, 1),
        (F, 2, 1), (B, 0, 0), (F, 3, 1), (B, 1, 0), (B, 2, 1), (B, 3, 1), (B, 2, 0), (B, 3, 0),
    ]
    assert interleaved(2, 1, 4, 2) == [
        (F, 0, 0), (F, 1, 0), (F, 0, 1), (B, 0, 1), (F, 1, 1), (B, 1, 1), (F, 2, 0), (B, 0, 0),
        (F, 3, 0), (B, 1, 0), (F, 2, 1), (B, 2, 1), (F, 3, 1), (B, 3, 1), (B, 2, 0), (B, 3, 0),
    ]
    # M = N: every forward is warm-up.
    assert [k for k, _, _ in interleaved(2, 1, 2, 3)] == [F] * 6 + [B] * 6
    assert stage_order("1f1b", 2, 0, 2) == [(F, 0, 0), (F, 1, 0), (B, 0, 0), (B, 1, 0)]


@pytest.mark.parametrize(("n", "v", "m", "planner_all_max_s"), [(4, 2, 4, 1.6133756701151512), (2, 4, 6, 3.63654479694366)])
def test_the_emulators_dag_time_is_the_planners(n: int, v: int, m: int, planner_all_max_s: float) -> None:
    # computeFrontier(...).allMax.timeS of the GPT-3 A100 profile as N GPUs × V chunks (the
    # planner's interleaved DAG), against the model the demo checks emulated iterations with.
    profile = load_profile(A100_PROFILE)
    assert iteration_time_s(profile, n, m, schedule="interleaved", num_chunks=v) == pytest.approx(planner_all_max_s, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": "interleaved", "num_chunks": 1}, "num_chunks must be >= 2"),
        ({"schedule": "interleaved", "num_chunks": 2, "num_microbatches": 3}, r"multiple of num_stages \(2\)"),
        ({"schedule": "1f1b", "num_chunks": 2}, "num_chunks must be 1 unless"),
    ],
)
def test_the_client_refuses_an_interleaved_shape_the_services_would(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"num_microbatches": 4, "sync": "none", "start": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        perseus.PipelineFrequencyOptimizer(0, 0, 0, 0, 0, 1, 2, 1, 2, "127.0.0.1:1", job_id="x", **args)  # type: ignore[arg-type]


def test_hooks_take_megatrons_chunk_and_run_a_wrong_one_at_default_clocks(
    restartable_server: RestartableServer, client_logger: tuple[logging.Logger, WarningCounter]
) -> None:
    logger, warnings = client_logger
    restartable_server.start()
    n, v, m = 2, 2, 2
    ranks = [
        perseus.PipelineFrequencyOptimizer(
            r, 0, r, 0, r, 1, n, 1, n, restartable_server.address, job_id="il-hooks", num_microbatches=m,
            schedule="interleaved", num_chunks=v, sync="none", supported_frequencies_mhz=A100_CLOCKS, gpu_model="A100-SXM4",
            blocking_power_w=83.64, profiling={"iterations_per_frequency": 1000}, retry_max_s=0.3, logger=logger,
        )
        for r in range(n)
    ]

    def iterate(opt: perseus.PipelineFrequencyOptimizer, wrong_at: int = -1) -> list[int]:
        got = []
        with opt.step():
            for i, (kind, _mb, chunk) in enumerate(interleaved(n, opt.pp_rank, m, v)):
                with opt.instruction(kind, chunk=(1 - chunk) if i == wrong_at else chunk) as mhz:
                    got.append(mhz)
                    time.sleep(0.0005)
        return got

    try:
        # The sweep's first clock (it stays there for 1000 iterations): every instruction of both
        # chunks runs at it, and a default clock shows as 0.
        assert wait_until(lambda: all(o.schedule.reason.startswith("profiling 1410") for o in ranks), 60, step=lambda: [iterate(o) for o in ranks])
        rank1 = ranks[1]
        order = interleaved(n, 1, m, v)
        assert set(rank1.schedule.clocks) == set(order)
        assert iterate(rank1) == [1410] * len(order)
        assert rank1.status().order_mismatches == 0
        # The trainer claims chunk 0 where Megatron's order has chunk 1 (instruction 2, the third
        # forward): that instruction runs at default clocks, the rest at the schedule's.
        assert order[2] == (F, 0, 1)
        got = iterate(rank1, wrong_at=2)
        assert got == [1410, 1410, 0] + [1410] * (len(order) - 3)
        assert rank1.status().order_mismatches == 1
        assert warnings.count("but this rank's interleaved order has forward of microbatch 0 chunk 1 there") == 1
        assert all(o.flush(timeout_s=10) for o in ranks)
        # The agent measured each instruction under its chunk (the trainer's word for the wrong one).
        last = [x for x in rank1.measurements() if x.iteration == rank1.iteration]
        assert [x.chunk for x in last] == [0, 0, 0] + [c for _, _, c in order[3:]]
        assert all(o.status().schedules_rejected == 0 for o in ranks)
        with grpc.insecure_channel(restartable_server.address) as ch:
            cov = profiler_pb2_grpc.ProfilerStub(ch).GetCoverage(profiler_pb2.GetCoverageRequest(job_id="il-hooks", min_count=1), timeout=10)
        # N·V = 4 virtual stages × 2 kinds, each measured.
        assert sorted((e.stage, e.instruction) for e in cov.entries if e.covered_frequencies_mhz) == [
            (s, k) for s in range(n * v) for k in (common_pb2.INSTRUCTION_KIND_FORWARD, common_pb2.INSTRUCTION_KIND_BACKWARD)
        ]
    finally:
        for o in ranks:
            o.close(timeout_s=3)


def test_an_interleaved_emulation_profiles_each_virtual_stage_from_the_table(restartable_server: RestartableServer) -> None:
    """2 GPUs × 4 chunks: chunk 3 of GPU 1 is virtual stage 7, whose table differs from stage 1's.
    The trainer sleeps stage 7's time, the simulated agent draws stage 7's power (OpenSession gives
    it N, each Begin the chunk) and the profiler files the measurement under stage 7."""
    restartable_server.extra_args = ["--agent-sim-time-scale", "0.25"]
    restartable_server.start()
    spec = EmulationSpec(
        profile_csv=str(A100_PROFILE), server_url=restartable_server.address, job_id="emulate-il",
        schedule="interleaved", num_chunks=4, dp_degree=1, num_microbatches=2, time_scale=0.25, blocking_power_w=83.64,
        profiling={"iterations_per_frequency": 3, "frequency_stride": 9},
    )
    handle = EmulationHandle(spec)
    assert (handle.num_stages, handle.world_size) == (2, 2)
    records = _run_until_swept(spec, clocks=2)
    assert any(str(r["reason"]).startswith("profiling") for r in records)
    table = load_profile(A100_PROFILE)
    with grpc.insecure_channel(restartable_server.address) as ch:
        cells = profiler_pb2_grpc.ProfilerStub(ch).GetProfile(profiler_pb2.GetProfileRequest(job_id="emulate-il"), timeout=10).cells
    kinds = {common_pb2.INSTRUCTION_KIND_FORWARD: "forward", common_pb2.INSTRUCTION_KIND_BACKWARD: "backward"}
    seen = set()
    for c in cells:
        want = table.option(c.stage, kinds[c.instruction], c.frequency_mhz)  # type: ignore[arg-type]
        assert c.time_robust_s == pytest.approx(want.time_s, rel=1e-4), (c, want)
        assert c.energy_mean_j == pytest.approx(want.energy_j, rel=0.01), (c, want)
        seen.add((c.stage, c.instruction))
    assert len(seen) == 16, seen  # 8 virtual stages × 2 kinds
    # Stage 7 is not stage 1 (what a GPU-only reading of the profile would file it as).
    s7 = next(c for c in cells if c.stage == 7 and c.instruction == common_pb2.INSTRUCTION_KIND_FORWARD and c.frequency_mhz == 1410)
    assert s7.time_robust_s != pytest.approx(table.time_s(1, "forward", 1410), rel=0.01)
