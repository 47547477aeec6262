"""Cross-language contract of perseus.profiler.v1.Profiler: the generated Python stubs call the
TypeScript service (hosted by ``perseus serve``), good requests and at least one invalid request
per RPC, asserting the status code and the exact field violation."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from conftest import PerseusServer, field_violations
from perseus.common.v1 import common_pb2
from perseus.profiler.v1 import profiler_pb2, profiler_pb2_grpc

SOSP24 = Path(__file__).resolve().parents[3] / "data" / "sosp24" / "stage_profile"
FWD = common_pb2.INSTRUCTION_KIND_FORWARD


def _stub(server: PerseusServer) -> profiler_pb2_grpc.ProfilerStub:
    return profiler_pb2_grpc.ProfilerStub(server.channel)


def _job(stub: profiler_pb2_grpc.ProfilerStub) -> str:
    job_id = f"py-{uuid.uuid4().hex[:12]}"
    resp = stub.RegisterJob(
        profiler_pb2.RegisterJobRequest(
            job_id=job_id,
            pipeline=common_pb2.PipelineSpec(schedule=common_pb2.SCHEDULE_KIND_1F1B, num_stages=2, num_microbatches=4),
            dp_degree=1,
            tp_degree=2,
            supported_frequencies_mhz=[1410, 1395],
        ),
        timeout=10,
    )
    assert resp.created
    return job_id


def _measurement(stage: int = 0, tp: int = 0, mb: int = 0, iteration: int = 0, time_s: float = 0.05, energy_j: float = 20.0) -> profiler_pb2.InstructionMeasurement:
    return profiler_pb2.InstructionMeasurement(
        rank=common_pb2.RankIdentity(rank=stage * 2 + tp, dp_rank=0, pp_rank=stage, tp_rank=tp),
        instruction=FWD,
        microbatch=mb,
        frequency_mhz=1410,
        time_s=time_s,
        energy_j=energy_j,
        iteration=iteration,
    )


def _invalid(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[grpc.StatusCode, list[tuple[str, str]]]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, timeout=10, **kwargs)
    code: grpc.StatusCode = info.value.code()  # every RpcError the stubs raise is also a grpc.Call
    return code, field_violations(info.value)


def test_register_job_invalid(perseus_server: PerseusServer) -> None:
    stub = _stub(perseus_server)
    code, violations = _invalid(
        stub.RegisterJob,
        profiler_pb2.RegisterJobRequest(
            job_id="py-bad",
            pipeline=common_pb2.PipelineSpec(schedule=common_pb2.SCHEDULE_KIND_1F1B, num_stages=2, num_microbatches=0),
            dp_degree=1,
            tp_degree=1,
        ),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert violations == [("pipeline.num_microbatches", "must be ≥ 1, got 0")]


def test_report_measurements_acks_and_in_stream_errors(perseus_server: PerseusServer) -> None:
    stub = _stub(perseus_server)
    job_id = _job(stub)
    good = [_measurement(stage=s, tp=t, mb=m, iteration=i) for i in range(10) for s in range(2) for t in range(2) for m in range(4)]
    batches = [
        profiler_pb2.MeasurementBatch(batch_id="a", job_id=job_id, measurements=good[:80]),
        profiler_pb2.MeasurementBatch(batch_id="nan", job_id=job_id, measurements=[_measurement(time_s=math.nan)]),
        profiler_pb2.MeasurementBatch(batch_id="neg", job_id=job_id, measurements=[_measurement(energy_j=-1.0)]),
        profiler_pb2.MeasurementBatch(batch_id="rank", job_id=job_id, measurements=[_measurement(stage=2)]),
        profiler_pb2.MeasurementBatch(batch_id="unknown", job_id="py-no-such-job", measurements=good[:1]),
        profiler_pb2.MeasurementBatch(batch_id="b", job_id=job_id, measurements=good[80:]),
        profiler_pb2.MeasurementBatch(batch_id="a", job_id=job_id, measurements=good[:80]),
    ]
    acks = list(stub.ReportMeasurements(iter(batches), timeout=30))
    summary = [(a.batch_id, a.stored_count, a.duplicate, a.error.code, [(v.field, v.description) for v in a.error.violations]) for a in acks]
    assert summary == [
        ("a", 80, False, 0, []),
        ("nan", 0, False, grpc.StatusCode.INVALID_ARGUMENT.value[0], [("measurements[0].time_s", "must be a finite number, got NaN")]),
        ("neg", 0, False, grpc.StatusCode.INVALID_ARGUMENT.value[0], [("measurements[0].energy_j", "must be ≥ 0, got -1")]),
        ("rank", 0, False, grpc.StatusCode.INVALID_ARGUMENT.value[0], [("measurements[0].rank.rank", "must be < world size 4, got 4"), ("measurements[0].rank.pp_rank", "must be < num_stages 2, got 2")]),
        ("unknown", 0, False, grpc.StatusCode.NOT_FOUND.value[0], []),
        ("b", 80, False, 0, []),
        ("a", 0, True, 0, []),
    ]
    # A read waits for aggregation at most ~0.5 s, then answers from the cells aggregated so far: on a
    # slow machine the first reads may miss the new data, so read until both cells are there.
    deadline = time.monotonic() + 30
    while True:
        profile = stub.GetProfile(profiler_pb2.GetProfileRequest(job_id=job_id), timeout=10)
        if (len(profile.cells) == 2 and all(c.raw_count == 40 for c in profile.cells)) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    # 10 iterations, the first is warm-up: 9 × 4 microbatches kept per stage; energy summed over 2 TP ranks.
    assert [(c.stage, c.count, c.raw_count, c.energy_robust_j) for c in profile.cells] == [(0, 36, 40, 40.0), (1, 36, 40, 40.0)]
    assert profile.cells[0].time_robust_s == pytest.approx(0.05)


def test_report_iterations(perseus_server: PerseusServer) -> None:
    stub = _stub(perseus_server)
    job_id = _job(stub)
    rec = profiler_pb2.IterationRecord(rank=common_pb2.RankIdentity(rank=0), iteration=3, time_s=2.8, energy_j=7339.0)
    assert stub.ReportIterations(profiler_pb2.ReportIterationsRequest(job_id=job_id, iterations=[rec]), timeout=10).stored_count == 1
    bad = profiler_pb2.IterationRecord(rank=common_pb2.RankIdentity(rank=0), iteration=4, time_s=0.0, energy_j=1.0)
    code, violations = _invalid(stub.ReportIterations, profiler_pb2.ReportIterationsRequest(job_id=job_id, iterations=[bad]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert violations == [("iterations[0].time_s", "must be > 0, got 0")]
    code, _ = _invalid(stub.ReportIterations, profiler_pb2.ReportIterationsRequest(job_id="py-no-such-job", iterations=[rec]))
    assert code == grpc.StatusCode.NOT_FOUND


def test_get_profile_invalid(perseus_server: PerseusServer) -> None:
    stub = _stub(perseus_server)
    job_id = _job(stub)
    code, violations = _invalid(stub.GetProfile, profiler_pb2.GetProfileRequest(job_id=job_id, dp_rank=1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert violations == [("dp_rank", "must be < dp_degree 1, got 1")]
    code, violations = _invalid(stub.GetProfile, profiler_pb2.GetProfileRequest(job_id=""))
    assert (code, violations) == (grpc.StatusCode.INVALID_ARGUMENT, [("job_id", "is required")])
    code, violations = _invalid(stub.GetProfile, profiler_pb2.GetProfileRequest(job_id=job_id, max_relative_stderr=float("nan")))
    assert (code, violations) == (grpc.StatusCode.INVALID_ARGUMENT, [("max_relative_stderr", "must be a finite number, got NaN")])
    code, violations = _invalid(stub.GetProfile, profiler_pb2.GetProfileRequest(job_id=job_id, max_relative_stderr=-0.5))
    assert (code, violations) == (grpc.StatusCode.INVALID_ARGUMENT, [("max_relative_stderr", "must be ≥ 0, got -0.5")])


def test_get_coverage(perseus_server: PerseusServer) -> None:
    stub = _stub(perseus_server)
    job_id = _job(stub)
    cov = stub.GetCoverage(profiler_pb2.GetCoverageRequest(job_id=job_id), timeout=10)
    assert not cov.complete
    assert next((e.stage, e.instruction, list(e.covered_frequencies_mhz), list(e.missing_frequencies_mhz)) for e in cov.entries) == (0, FWD, [], [1410, 1395])
    code, violations = _invalid(stub.GetCoverage, profiler_pb2.GetCoverageRequest(job_id="bad id"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert violations == [("job_id", 'must match [A-Za-z0-9._-]{1,128}, got "bad id"')]


def test_import_export_round_trip_of_the_sosp24_profile(perseus_server: PerseusServer) -> None:
    stub = _stub(perseus_server)
    csv = (SOSP24 / "gpt3-175b+a100_sxm_bf16.csv").read_text()
    job_id = f"py-a100-{uuid.uuid4().hex[:8]}"
    resp = stub.ImportProfile(profiler_pb2.ImportProfileRequest(job_id=job_id, format=profiler_pb2.PROFILE_FORMAT_STAGE, csv=csv), timeout=30)
    assert resp.row_count == 608
    out = stub.ExportProfile(profiler_pb2.ExportProfileRequest(job_id=job_id, format=profiler_pb2.PROFILE_FORMAT_STAGE), timeout=30)
    assert out.csv == csv.replace("\r\n", "\n").rstrip("\n") + "\n"


def test_import_profile_invalid(perseus_server: PerseusServer) -> None:
    stub = _stub(perseus_server)
    code, violations = _invalid(
        stub.ImportProfile,
        profiler_pb2.ImportProfileRequest(job_id="py-imp", format=profiler_pb2.PROFILE_FORMAT_STAGE, csv="stage,instruction,frequency,time,energy\n0,forward,1410,inf,1\n"),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert violations == [("csv", 'line 2: time must be a finite number, got "inf"')]


def test_export_profile_invalid(perseus_server: PerseusServer) -> None:
    stub = _stub(perseus_server)
    job_id = _job(stub)
    code, violations = _invalid(stub.ExportProfile, profiler_pb2.ExportProfileRequest(job_id=job_id))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert violations == [("format", "must be one of PROFILE_FORMAT_STAGE, PROFILE_FORMAT_RANK, got PROFILE_FORMAT_UNSPECIFIED")]
    code, _ = _invalid(stub.ExportProfile, profiler_pb2.ExportProfileRequest(job_id="py-no-such-job", format=profiler_pb2.PROFILE_FORMAT_RANK))
    assert code == grpc.StatusCode.NOT_FOUND
