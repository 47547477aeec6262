"""The emulated pipeline trainer: real 1F1B dependencies, the DP barrier, stragglers, live schedules."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from typing import Any

import pytest

from fixtures_client import A100_PROFILE, RestartableServer
from perseus.emulate import EmulationHandle, EmulationSpec, load_profile, run_emulation
from perseus.emulate.model import iteration_time_s

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


def test_emulated_ranks_follow_the_optimizers_live_schedule(restartable_server: RestartableServer) -> None:
    restartable_server.start()
    spec = EmulationSpec(
        profile_csv=str(A100_PROFILE), server_url=restartable_server.address, job_id="emulate-live",
        num_stages=2, dp_degree=2, num_microbatches=2, time_scale=0.1, blocking_power_w=83.64,
        profiling={"iterations_per_frequency": 1, "frequency_stride": 5},
    )
    handle = EmulationHandle(spec)
    records: list[dict[str, Any]] = []
    handle.start()
    try:
        import time

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and handle.alive():
            records.extend(handle.records(0.2))
            sweeping = {r["reason"] for r in records if r["reason"].startswith("profiling")}
            if len(sweeping) >= 2:
                break
        handle.stop_soon()
        handle.join(30)
        records.extend(handle.records(0.5))
        assert not handle.failed()
    finally:
        handle.terminate()
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
