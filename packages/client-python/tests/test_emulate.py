"""The emulated pipeline trainer: real 1F1B dependencies, the DP barrier, stragglers, live schedules."""

from __future__ import annotations

import re
import statistics
import time
from collections import defaultdict
from typing import Any

import grpc
import pytest

from fixtures_client import A100_PROFILE, RestartableServer
from perseus.common.v1 import common_pb2
from perseus.emulate import EmulationHandle, EmulationSpec, load_profile, run_emulation
from perseus.emulate.model import iteration_time_s
from perseus.profiler.v1 import profiler_pb2, profiler_pb2_grpc

N, M, DP = 4, 4, 2


def by_iteration(records: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        out[r["iteration"]].append(r)
    return out


def test_profile_and_model_match_the_papers_artifact() -> None:
    profile = load_profile(A100_PROFILE)
    assert profile.num_stages == 8
    assert profile.frequencies_mhz[0] == 1410 and profile.frequencies_mhz[-1] == 855 and len(profile.frequencies_mhz) == 38
    # data/README.md: all-max-clock plan, 8 stages, M = 12: T = 2.8365 s.
    assert iteration_time_s(profile, 8, 12) == pytest.approx(2.8365, abs=5e-5)
    # A clock missing from the table runs at the next one above it, never slower.
    assert profile.option(0, "forward", 1400).frequency_mhz == 1410
    assert profile.option(0, "forward", 0).frequency_mhz == 1410


def test_bare_pipeline_follows_the_critical_path_and_a_straggler_holds_back_every_pipeline() -> None:
    profile = load_profile(A100_PROFILE)
    t_model = iteration_time_s(profile, N, M)
    busiest_stage = max((profile.time_s(s, "forward", 0) + profile.time_s(s, "backward", 0)) * M for s in range(N))
    assert busiest_stage < 0.7 * t_model  # so "waited on its neighbours" is distinguishable from "did not"
    spec = EmulationSpec(profile_csv=str(A100_PROFILE), server_url="unused", num_stages=N, dp_degree=DP, num_microbatches=M, time_scale=0.25, perseus=False)
    recs = by_iteration(run_emulation(spec, iterations=4, timeout_s=120))
    assert sorted(recs) == [1, 2, 3, 4]
    times = []
    for it, rs in recs.items():
        assert len(rs) == N * DP
        t = max(r["time_s"] for r in rs)
        # Real dependencies: never faster than the longest path (a busy host only adds time).
        assert t >= t_model * 0.995, (it, t, t_model)
        assert all(r["frequencies_mhz"] == tuple([1410] * 2 * M) for r in rs)
        times.append(t)
    # Sleeps and pipes only add host delays (how much depends on the machine's load: up to +80 %
    # was seen with 8 jobs on 2 cores); twice the DAG time would mean an instruction ran twice.
    assert min(times[1:]) < t_model * 2.0, (times, t_model)

    # Straggler: pipeline 1 runs 1.2x slower; pipeline 0 waits for it at the gradient all-reduce.
    slow = EmulationSpec(
        profile_csv=str(A100_PROFILE), server_url="unused", num_stages=N, dp_degree=DP, num_microbatches=M,
        time_scale=0.25, perseus=False, straggler_dp_rank=1, straggler_slowdown=1.2, straggler_epochs=(0,),
    )
    recs = by_iteration(run_emulation(slow, iterations=4, timeout_s=120))
    walls: dict[int, list[float]] = defaultdict(list)
    computes: dict[int, list[float]] = defaultdict(list)
    for it, rs in recs.items():
        assert {r["slowdown"] for r in rs if r["dp_rank"] == 1} == {1.2}
        assert {r["slowdown"] for r in rs if r["dp_rank"] == 0} == {1.0}
        if it == 1:
            continue  # start-up
        for dp in range(DP):
            walls[dp].append(max(r["time_s"] for r in rs if r["dp_rank"] == dp))
            computes[dp].append(max(r["compute_time_s"] for r in rs if r["dp_rank"] == dp))
        # Every pipeline's step lasts as long as the straggler's: never shorter than 1.2x the DAG.
        assert min(walls[0][-1], walls[1][-1]) >= 1.2 * t_model * 0.995, (it, walls)
    # Wall times are equal (the barrier), but each pipeline's own compute path is not: pipeline 0
    # finished its backwards ~1.2x sooner. That difference is what straggler detection uses.
    wall_ratio = statistics.median(walls[1]) / statistics.median(walls[0])
    compute_ratio = statistics.median(computes[1]) / statistics.median(computes[0])
    assert 0.95 <= wall_ratio <= 1.05, (walls, wall_ratio)
    assert 1.10 <= compute_ratio <= 1.30, (computes, compute_ratio)


def _run_until_swept(spec: EmulationSpec, clocks: int, timeout_s: float = 90) -> list[dict[str, Any]]:
    """Runs the emulation until ranks have run ``clocks`` profiling clocks, then stops it."""
    handle = EmulationHandle(spec)
    records: list[dict[str, Any]] = []
    handle.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and handle.alive():
            records.extend(handle.records(0.2))
            if len({r["reason"] for r in records if r["reason"].startswith("profiling")}) >= clocks:
                break
        handle.stop_soon()
        handle.join(30)
        records.extend(handle.records(0.5))
        assert not handle.failed()
    finally:
        handle.terminate()
    return records


def test_emulated_ranks_follow_the_optimizers_live_schedule(restartable_server: RestartableServer) -> None:
    restartable_server.extra_args = ["--agent-sim-time-scale", "0.1"]  # the trainer's time scale
    restartable_server.start()
    spec = EmulationSpec(
        profile_csv=str(A100_PROFILE), server_url=restartable_server.address, job_id="emulate-live",
        num_stages=2, dp_degree=2, num_microbatches=2, time_scale=0.1, blocking_power_w=83.64,
        profiling={"iterations_per_frequency": 1, "frequency_stride": 5},
    )
    records = _run_until_swept(spec, clocks=2)
    assert records, "no iteration finished"
    swept = sorted({r["reason"] for r in records if r["reason"].startswith("profiling")})
    assert len(swept) >= 2, swept
    for r in records:
        m = re.match(r"profiling (\d+) MHz", r["reason"])
        if m:
            # Every instruction of every rank ran at the sweep step's clock (instructions whose
            # sweep stopped early run at the highest clock instead).
            assert set(r["frequencies_mhz"]) <= {int(m.group(1)), 1410}, r
            assert r["phase"] == "PHASE_PROFILING"
        else:
            assert set(r["frequencies_mhz"]) == {1410}, r  # default clocks before the first schedule
    assert {r["rank"] for r in records} == {0, 1, 2, 3}


def test_a_time_scaled_emulation_profiles_the_tables_times_and_energies(restartable_server: RestartableServer) -> None:
    """Issue 12: dp-detect.sh ran the trainer at time scale 0.25 against an agent on real time. The
    agent mapped the 4x client clock as another host's, so every instruction measured the gap
    between the receipts of its Begin and End: a quarter of its time, and ~0 when a busy host sent
    both together — the optimizer then planned a one-point frontier of 0.73 ms against 178 ms.
    With the agent on the trainer's scale, the profile is the simulated GPUs' table."""
    restartable_server.extra_args = ["--agent-sim-time-scale", "0.25"]
    restartable_server.start()
    spec = EmulationSpec(
        profile_csv=str(A100_PROFILE), server_url=restartable_server.address, job_id="emulate-scaled",
        num_stages=2, dp_degree=2, num_microbatches=2, time_scale=0.25, blocking_power_w=83.64,
        profiling={"iterations_per_frequency": 3, "frequency_stride": 9},
    )
    records = _run_until_swept(spec, clocks=2)
    assert any(r["reason"].startswith("profiling") for r in records)
    table = load_profile(A100_PROFILE)
    with grpc.insecure_channel(restartable_server.address) as ch:
        cells = profiler_pb2_grpc.ProfilerStub(ch).GetProfile(profiler_pb2.GetProfileRequest(job_id="emulate-scaled"), timeout=10).cells
    kinds = {"INSTRUCTION_KIND_FORWARD": "forward", "INSTRUCTION_KIND_BACKWARD": "backward"}
    checked = 0
    for c in cells:
        kind = kinds[common_pb2.InstructionKind.Name(c.instruction)]
        want = table.option(c.stage, kind, c.frequency_mhz)  # type: ignore[arg-type]
        assert want.frequency_mhz == c.frequency_mhz, c
        # Exact up to ns rounding: the emulated End is the Begin plus the table's time, and the
        # simulated GPU draws the table's power between the two on the same clock.
        assert c.time_robust_s == pytest.approx(want.time_s, rel=1e-4), (c, want)
        assert c.energy_mean_j == pytest.approx(want.energy_j, rel=0.01), (c, want)
        checked += 1
    # Both stages, both kinds, at the first swept clock at least.
    assert checked >= 4, cells
