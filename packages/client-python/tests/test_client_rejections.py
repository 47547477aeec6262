"""Permanent rejections are not outages; close() is bounded; the client says when GPUs are simulated.

Every test runs the real Python client against real `perseus serve` processes."""

from __future__ import annotations

import logging
import time

import grpc
import pytest

import perseus
from fixtures_client import RestartableServer, WarningCounter, free_port, wait_until
from test_client import M, make_client, run_iteration


def errors(warnings: WarningCounter, needle: str) -> int:
    return warnings.count(needle, logging.ERROR)


def test_invalid_job_id_raises_configuration_error_with_the_servers_violations(restartable_server: RestartableServer, client_logger: tuple[logging.Logger, WarningCounter]) -> None:
    logger, warnings = client_logger
    restartable_server.start()
    opt = make_client(restartable_server.address, logger, "bad id")
    try:
        with pytest.raises(perseus.ConfigurationError) as info:
            opt.wait_ready(timeout_s=30)
        err = info.value
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert ("job_id", 'must match [A-Za-z0-9._-]{1,128}, got "bad id"') in err.violations or any(f.endswith("job_id") for f, _ in err.violations)
        assert opt.status().failures[err.link].code == "INVALID_ARGUMENT"
        # Agent and optimizer refuse that job id; each says so once, and neither retries. The
        # profiler is never sent anything: it waits for the optimizer to name the generation's
        # profile, which a rejected job never gets.
        assert wait_until(lambda: set(opt.status().failures) == {"agent", "optimizer"}, 30)
        assert {f.code for f in opt.status().failures.values()} == {"INVALID_ARGUMENT"}
        for _ in range(10):
            assert run_iteration(opt) == [0] * (2 * M)  # training goes on at default clocks
        assert errors(warnings, "rejected this client") == 2
        assert opt.status().measurements_acked == 0
        assert opt.status().agent_sessions == 0 and opt.status().optimizer_registrations == 0
    finally:
        opt.close(timeout_s=3)


def test_reused_job_id_with_another_spec_stops_clock_changes_instead_of_applying_the_old_plan(
    restartable_server: RestartableServer, client_logger: tuple[logging.Logger, WarningCounter]
) -> None:
    logger, warnings = client_logger
    restartable_server.start()
    first = make_client(restartable_server.address, logger, "reused-id")
    try:
        assert wait_until(lambda: first.schedule.phase == "PHASE_PROFILING", 30, step=lambda: run_iteration(first))
        assert set(run_iteration(first)) == {first.schedule.frequency("forward", 0)} and first.schedule.frequency("forward", 0) > 0
        # Same id, M=4 instead of 3, while the first run is alive: the optimizer refuses it.
        second = perseus.PipelineFrequencyOptimizer(
            0, 0, 0, 0, 1, 1, 1, 1, 1, restartable_server.address,
            job_id="reused-id", num_microbatches=M + 1, sync="none", supported_frequencies_mhz=list(range(1410, 854, -15)),
            gpu_model="A100-SXM4", blocking_power_w=83.64, retry_max_s=0.3, logger=logger,
        )
        try:
            with pytest.raises(perseus.ConfigurationError) as info:
                second.wait_ready(timeout_s=30)
            assert info.value.link == "optimizer"
            assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert "different spec" in info.value.message
            # Never the first job's plan: default clocks on every instruction of the second run.
            for _ in range(10):
                with second.step():
                    for kind, _mb in perseus.one_f_one_b(1, 0, M + 1):
                        with second.instruction(kind) as mhz:
                            assert mhz == 0
            st = second.status()
            assert st.schedule_version == 0 and st.failures["optimizer"].code == "FAILED_PRECONDITION"
            assert st.optimizer_registrations == 0
            assert errors(warnings, "optimizer at") == 1
            assert warnings.count("optimizer at") == 0  # not reported as an outage
        finally:
            second.close(timeout_s=3)
    finally:
        first.close(timeout_s=3)


def test_close_returns_within_a_second_with_every_service_down(restartable_server: RestartableServer, client_logger: tuple[logging.Logger, WarningCounter]) -> None:
    logger, _ = client_logger
    never = make_client(f"127.0.0.1:{free_port()}", logger, "close-down")
    for _ in range(5):
        run_iteration(never)
    t0 = time.monotonic()
    never.close()  # the default timeout: nothing is connected, so nothing is waited for
    assert time.monotonic() - t0 < 1.0
    # Services that hang with their connections open (SIGSTOP: a stalled host or a partition):
    # the links still look connected, with measurements and reports in flight. close() waits only
    # while something is being delivered (the old client waited its whole 3 s grace).
    restartable_server.start()
    hung = make_client(restartable_server.address, logger, "close-hung")
    assert wait_until(lambda: hung.status().measurements_received > 0 and hung.status().optimizer_connected, 30, step=lambda: run_iteration(hung))
    restartable_server.pause()
    for _ in range(5):
        run_iteration(hung)
    assert hung.status().agent_connected
    t0 = time.monotonic()
    hung.close()
    took = time.monotonic() - t0
    assert took < 1.0, took
    assert hung._io.wait_stopped(0)
    run_iteration(hung)  # hooks after close are harmless and never block
    restartable_server.resume()


def test_simulated_agent_is_flagged_in_status_and_warned_once(restartable_server: RestartableServer, client_logger: tuple[logging.Logger, WarningCounter]) -> None:
    logger, warnings = client_logger
    restartable_server.start()
    opt = make_client(restartable_server.address, logger, "simulated-flag")
    try:
        assert wait_until(lambda: opt.status().agent_connected, 30, step=lambda: run_iteration(opt))
        assert opt.status().simulated is True
        restartable_server.kill()
        restartable_server.start()
        assert wait_until(lambda: opt.status().agent_sessions == 2, 30, step=lambda: run_iteration(opt))
        assert warnings.count("SIMULATED GPU") == 1
    finally:
        opt.close(timeout_s=3)


def test_report_straggler_from_python(restartable_server: RestartableServer, client_logger: tuple[logging.Logger, WarningCounter]) -> None:
    logger, _ = client_logger
    restartable_server.start()
    opt = make_client(restartable_server.address, logger, "straggler-api")
    try:
        with pytest.raises(ValueError, match="exactly one of"):
            opt.report_straggler(0, slowdown=1.2, recovered=True)
        assert wait_until(lambda: opt.schedule.version > 0, 30, step=lambda: run_iteration(opt))
        with pytest.raises(perseus.ConfigurationError) as info:
            opt.report_straggler(5, slowdown=1.2)  # dp_degree is 1: no pipeline 5
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in info.value.violations] == ["dp_rank"]
    finally:
        opt.close(timeout_s=3)


def test_a_rank_never_applies_the_plan_of_a_job_id_registered_with_another_spec(
    restartable_server: RestartableServer, client_logger: tuple[logging.Logger, WarningCounter]
) -> None:
    """The issue's case: a second run reuses a job id with M=4 while the M=3 run is alive and
    running the optimizer's clocks. Its ranks must not apply that plan."""
    logger, warnings = client_logger
    restartable_server.start()
    clocks = list(range(1410, 854, -15))

    def rank(r: int, m: int, device: int) -> perseus.PipelineFrequencyOptimizer:
        return perseus.PipelineFrequencyOptimizer(
            r, 0, r, 0, device, 1, 2, 1, 2, restartable_server.address, job_id="reused-live", num_microbatches=m, sync="none",
            supported_frequencies_mhz=clocks, gpu_model="A100-SXM4", blocking_power_w=83.64, retry_max_s=0.3, logger=logger,
        )

    def iterate(opt: perseus.PipelineFrequencyOptimizer, m: int) -> list[int]:
        got = []
        with opt.step():
            for kind, _mb in perseus.one_f_one_b(2, opt.pp_rank, m):
                with opt.instruction(kind) as mhz:
                    got.append(mhz)
                    time.sleep(0.0005)
        return got

    first = [rank(0, M, 0), rank(1, M, 1)]
    second: list[perseus.PipelineFrequencyOptimizer] = []
    try:
        assert wait_until(lambda: all(o.schedule.phase == "PHASE_PROFILING" for o in first), 30, step=lambda: [iterate(o, M) for o in first])
        assert max(iterate(first[1], M)) > 0  # the first run really runs the optimizer's clocks
        # The second run's rank 1 comes up first: it sees generation 1 has M=3 and waits.
        late = rank(1, M + 1, 3)
        second.append(late)
        for _ in range(40):
            assert iterate(late, M + 1) == [0] * (2 * (M + 1))
            for o in first:
                iterate(o, M)
        st = late.status()
        assert (st.schedule_version, st.optimizer_registrations, st.failures) == (0, 0, {})
        assert warnings.count("is registered") == 0 and warnings.count("this rank (1, 2, 4, 0, 1, 1, 2)") == 1
        # Its rank 0 is refused: a different spec while the first run's ranks are alive.
        head = rank(0, M + 1, 2)
        second.append(head)
        with pytest.raises(perseus.ConfigurationError) as info:
            head.wait_ready(timeout_s=30)
        assert (info.value.link, info.value.code) == ("optimizer", grpc.StatusCode.FAILED_PRECONDITION)
        assert "registered with a different spec" in info.value.message
        assert all(mhz == 0 for _ in range(5) for mhz in iterate(head, M + 1))
    finally:
        for o in first + second:
            o.close(timeout_s=3)
