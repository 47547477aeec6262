"""Cross-language contract of perseus.optimizer.v1.Optimizer: the generated Python stubs call the
TypeScript optimizer hosted by ``perseus serve``. Every RPC gets at least one invalid request that
must come back INVALID_ARGUMENT naming the field, and the happy path of a job is exercised."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from conftest import PerseusServer, field_violations
from perseus.common.v1 import common_pb2
from perseus.optimizer.v1 import optimizer_pb2, optimizer_pb2_grpc

F = common_pb2.INSTRUCTION_KIND_FORWARD
B = common_pb2.INSTRUCTION_KIND_BACKWARD


def stub(server: PerseusServer) -> optimizer_pb2_grpc.OptimizerStub:
    return optimizer_pb2_grpc.OptimizerStub(server.channel)


def spec(num_stages: int = 2, microbatches: int = 2, dp: int = 1) -> optimizer_pb2.JobSpec:
    return optimizer_pb2.JobSpec(
        pipeline=common_pb2.PipelineSpec(schedule=common_pb2.SCHEDULE_KIND_1F1B, num_stages=num_stages, num_microbatches=microbatches),
        dp_degree=dp,
        tp_degree=1,
        world_size=num_stages * dp,
        gpu_model="A100-SXM4",
        blocking_power_w=83.64,
    )


def rows() -> list[common_pb2.ProfileRow]:
    out = []
    for stage in range(2):
        for freq, tx, ex in [(1410, 1.0, 1.0), (1200, 1.2, 0.8), (900, 1.5, 0.7)]:
            out.append(common_pb2.ProfileRow(stage=stage, instruction=F, frequency_mhz=freq, time_s=0.02 * (1 + stage) * tx, energy_j=5 * (1 + stage) * ex))
            out.append(common_pb2.ProfileRow(stage=stage, instruction=B, frequency_mhz=freq, time_s=0.04 * (1 + stage) * tx, energy_j=10 * (1 + stage) * ex))
    return out


def invalid(fn: Callable[..., Any], request: Any, stream: bool = False) -> list[tuple[str, str]]:
    """The field violations of a call that must fail INVALID_ARGUMENT (a server stream fails on its first read)."""
    with pytest.raises(grpc.RpcError) as info:
        result = fn(request, timeout=20)
        if stream:
            next(result)
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    return field_violations(err)


def new_job(server: PerseusServer, **kw: int) -> str:
    job_id = f"py-{uuid.uuid4().hex[:12]}"
    resp = stub(server).RegisterJob(optimizer_pb2.RegisterJobRequest(job_id=job_id, spec=spec(**kw)), timeout=20)
    assert resp.created and resp.phase == optimizer_pb2.PHASE_REGISTERING
    return job_id


def test_register_job_invalid(perseus_server: PerseusServer) -> None:
    bad = spec()
    bad.pipeline.num_microbatches = 0
    assert invalid(stub(perseus_server).RegisterJob, optimizer_pb2.RegisterJobRequest(job_id="j", spec=bad)) == [
        ("spec.pipeline.num_microbatches", "must be ≥ 1, got 0")
    ]
    wrong = spec()
    wrong.world_size = 3
    assert invalid(stub(perseus_server).RegisterJob, optimizer_pb2.RegisterJobRequest(job_id="j", spec=wrong)) == [
        ("spec.world_size", "must equal pipeline.num_stages × dp_degree × tp_degree = 2, got 3")
    ]


def test_register_job_is_idempotent_and_rejects_another_spec(perseus_server: PerseusServer) -> None:
    job_id = new_job(perseus_server)
    again = stub(perseus_server).RegisterJob(optimizer_pb2.RegisterJobRequest(job_id=job_id, spec=spec()), timeout=20)
    assert not again.created
    # A rank of this generation is alive (it just called): another spec is refused.
    stub(perseus_server).RegisterRank(
        optimizer_pb2.RegisterRankRequest(
            job_id=job_id, rank=common_pb2.RankIdentity(rank=0), node="n", device_index=0, supported_frequencies_mhz=[1410]
        ),
        timeout=20,
    )
    with pytest.raises(grpc.RpcError) as info:
        stub(perseus_server).RegisterJob(optimizer_pb2.RegisterJobRequest(job_id=job_id, spec=spec(microbatches=3)), timeout=20)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert stub(perseus_server).GetJobStatus(optimizer_pb2.GetJobStatusRequest(job_id=job_id), timeout=20).generation == again.generation == 1


def test_register_job_with_another_spec_and_no_live_rank_starts_a_new_generation(perseus_server: PerseusServer) -> None:
    job_id = new_job(perseus_server)
    first = stub(perseus_server).RegisterJob(optimizer_pb2.RegisterJobRequest(job_id=job_id, spec=spec()), timeout=20)
    second = stub(perseus_server).RegisterJob(optimizer_pb2.RegisterJobRequest(job_id=job_id, spec=spec(microbatches=3)), timeout=20)
    assert second.created and second.generation == first.generation + 1 == 2
    assert second.spec_hash != first.spec_hash and len(second.spec_hash) == 64
    assert second.profile_job_id == f"{job_id}.g2"


def test_register_rank_invalid_and_out_of_range(perseus_server: PerseusServer) -> None:
    req = optimizer_pb2.RegisterRankRequest(job_id="j", rank=common_pb2.RankIdentity(), node="n", device_index=0)
    assert violated_fields_of(stub(perseus_server).RegisterRank, req) == ["supported_frequencies_mhz"]
    job_id = new_job(perseus_server)
    req = optimizer_pb2.RegisterRankRequest(
        job_id=job_id, rank=common_pb2.RankIdentity(rank=0, pp_rank=2), node="n", device_index=0, supported_frequencies_mhz=[1410]
    )
    assert invalid(stub(perseus_server).RegisterRank, req) == [("rank.pp_rank", "must be < num_stages 2, got 2")]


def violated_fields_of(fn: Callable[..., Any], request: Any, stream: bool = False) -> list[str]:
    return [f for f, _ in invalid(fn, request, stream)]


def test_watch_schedule_invalid_and_unknown(perseus_server: PerseusServer) -> None:
    assert violated_fields_of(stub(perseus_server).WatchSchedule, optimizer_pb2.WatchScheduleRequest(job_id=""), stream=True) == ["job_id"]
    with pytest.raises(grpc.RpcError) as info:
        next(stub(perseus_server).WatchSchedule(optimizer_pb2.WatchScheduleRequest(job_id="no-such-job"), timeout=20))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_report_iteration_invalid(perseus_server: PerseusServer) -> None:
    req = optimizer_pb2.ReportIterationRequest(job_id="j", rank=common_pb2.RankIdentity(), iteration=1, time_s=0.0, energy_j=1.0)
    assert invalid(stub(perseus_server).ReportIteration, req) == [("time_s", "must be ≥ 0.000001, got 0")]


def test_report_straggler_invalid(perseus_server: PerseusServer) -> None:
    req = optimizer_pb2.ReportStragglerRequest(job_id="j", dp_rank=0, slowdown=0.8)
    assert invalid(stub(perseus_server).ReportStraggler, req) == [("slowdown", "must be > 1, got 0.8")]
    assert violated_fields_of(stub(perseus_server).ReportStraggler, optimizer_pb2.ReportStragglerRequest(job_id="j")) == ["severity"]


def test_get_frontier_invalid(perseus_server: PerseusServer) -> None:
    assert invalid(stub(perseus_server).GetFrontier, optimizer_pb2.GetFrontierRequest(job_id="bad id")) == [
        ("job_id", 'must match [A-Za-z0-9._-]{1,128}, got "bad id"')
    ]


def test_set_policy_invalid(perseus_server: PerseusServer) -> None:
    req = optimizer_pb2.SetPolicyRequest(job_id="j", policy=optimizer_pb2.Policy(max_slowdown_percent=-1))
    assert invalid(stub(perseus_server).SetPolicy, req) == [("policy.max_slowdown_percent", "must be ≥ 0, got -1")]
    assert violated_fields_of(stub(perseus_server).SetPolicy, optimizer_pb2.SetPolicyRequest(job_id="j")) == ["policy"]


def test_plan_offline_invalid(perseus_server: PerseusServer) -> None:
    req = optimizer_pb2.PlanOfflineRequest(
        profile=rows()[:1],
        pipeline=common_pb2.PipelineSpec(schedule=common_pb2.SCHEDULE_KIND_1F1B, num_stages=1, num_microbatches=1),
        blocking_power_w=60,
    )
    assert invalid(stub(perseus_server).PlanOffline, req) == [("profile", "stage 0 backward has no rows")]


def test_get_job_status_invalid_and_unknown(perseus_server: PerseusServer) -> None:
    assert violated_fields_of(stub(perseus_server).GetJobStatus, optimizer_pb2.GetJobStatusRequest()) == ["job_id"]
    with pytest.raises(grpc.RpcError) as info:
        stub(perseus_server).GetJobStatus(optimizer_pb2.GetJobStatusRequest(job_id="no-such-job"), timeout=20)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_plan_offline_returns_a_frontier_with_plans(perseus_server: PerseusServer) -> None:
    req = optimizer_pb2.PlanOfflineRequest(
        profile=rows(),
        pipeline=common_pb2.PipelineSpec(schedule=common_pb2.SCHEDULE_KIND_1F1B, num_stages=2, num_microbatches=4),
        blocking_power_w=60,
        unit_time_s=0.001,
        include_plans=True,
    )
    resp = stub(perseus_server).PlanOffline(req, timeout=60)
    times = [p.time_s for p in resp.points]
    energies = [p.energy_j for p in resp.points]
    assert len(resp.points) >= 2
    assert times == sorted(times) and energies == sorted(energies, reverse=True)
    assert resp.intrinsic_index == 0
    # No slower than all-max clocks, and cheaper.
    assert resp.points[0].time_s <= resp.all_max_time_s * (1 + 1e-6)
    assert resp.points[0].energy_j < resp.all_max_energy_j
    assert len(resp.plans) == len(resp.points)
    assert [len(s.instructions) for s in resp.plans[0].stages] == [8, 8]


def test_a_job_registers_and_its_ranks_watch_their_schedule(perseus_server: PerseusServer) -> None:
    s = stub(perseus_server)
    job_id = new_job(perseus_server)
    watch = s.WatchSchedule(optimizer_pb2.WatchScheduleRequest(job_id=job_id, rank=1), timeout=20)
    first = next(watch)
    assert first.version == 1 and first.phase == optimizer_pb2.PHASE_REGISTERING and list(first.instructions) == []
    for r in range(2):
        resp = s.RegisterRank(
            optimizer_pb2.RegisterRankRequest(
                job_id=job_id, rank=common_pb2.RankIdentity(rank=r, pp_rank=r), node="n0", device_index=r, supported_frequencies_mhz=[1410, 1395, 1380]
            ),
            timeout=20,
        )
        assert resp.created and resp.registered_ranks == r + 1
    again = s.RegisterRank(
        optimizer_pb2.RegisterRankRequest(
            job_id=job_id, rank=common_pb2.RankIdentity(rank=1, pp_rank=1), node="n0", device_index=1, supported_frequencies_mhz=[1410, 1395, 1380]
        ),
        timeout=20,
    )
    assert not again.created and again.registered_ranks == 2
    # All ranks registered, no profile yet: the online sweep starts at the highest clock.
    profiling = next(x for x in watch if x.phase == optimizer_pb2.PHASE_PROFILING)
    assert {i.frequency_mhz for i in profiling.instructions} == {1410}
    # Stage 1 of 2 stages, 2 microbatches, 1F1B: F0 B0 F1 B1.
    assert [(i.instruction, i.microbatch) for i in profiling.instructions] == [(F, 0), (B, 0), (F, 1), (B, 1)]
    watch.cancel()
    status = s.GetJobStatus(optimizer_pb2.GetJobStatusRequest(job_id=job_id), timeout=20)
    assert status.phase == optimizer_pb2.PHASE_PROFILING and status.registered_ranks == 2 and status.world_size == 2
    with pytest.raises(grpc.RpcError) as info:
        s.GetFrontier(optimizer_pb2.GetFrontierRequest(job_id=job_id), timeout=20)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
