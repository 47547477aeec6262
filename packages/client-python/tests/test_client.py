"""PipelineFrequencyOptimizer against the real TypeScript services: schedules, fail-safe, recovery."""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import pytest

import perseus
from fixtures_client import A100_CLOCKS, RestartableServer, WarningCounter, free_port, wait_until

M = 3
ORDER_1STAGE = perseus.one_f_one_b(1, 0, M)


def make_client(address: str, logger: logging.Logger, job_id: str, **kw: Any) -> perseus.PipelineFrequencyOptimizer:
    return perseus.PipelineFrequencyOptimizer(
        0, 0, 0, 0, 0, 1, 1, 1, 1, address,
        job_id=job_id, num_microbatches=M, sync="none", supported_frequencies_mhz=A100_CLOCKS,
        gpu_model="A100-SXM4", blocking_power_w=83.64, retry_max_s=0.3, logger=logger, **kw,
    )


def run_iteration(opt: perseus.PipelineFrequencyOptimizer, compute_s: float = 0.0005) -> list[int]:
    """One 1F1B iteration of a 1-stage pipeline (each instruction "computes" ``compute_s``);
    returns the clock each instruction got."""
    got = []
    with opt.step():
        for kind, _mb in ORDER_1STAGE:
            with opt.instruction(kind) as mhz:
                got.append(mhz)
                time.sleep(compute_s)
    return got


def test_constructor_rejects_inconsistent_layout() -> None:
    with pytest.raises(ValueError, match="world_size must equal dp_degree \\* pp_degree \\* tp_degree = 4, got 3"):
        perseus.PipelineFrequencyOptimizer(0, 0, 0, 0, 0, 2, 2, 1, 3, "127.0.0.1:1", job_id="j", num_microbatches=2, start=False)
    with pytest.raises(ValueError, match="pp_rank must be in \\[0, 2\\), got 2"):
        perseus.PipelineFrequencyOptimizer(0, 0, 2, 0, 0, 1, 2, 1, 2, "127.0.0.1:1", job_id="j", num_microbatches=2, start=False)
    with pytest.raises(ValueError, match="num_microbatches must be >= 1, got 0"):
        perseus.PipelineFrequencyOptimizer(0, 0, 0, 0, 0, 1, 1, 1, 1, "127.0.0.1:1", job_id="j", num_microbatches=0, start=False)
    with pytest.raises(ValueError, match="agent_url is required"):
        perseus.PipelineFrequencyOptimizer(0, 0, 0, 0, 0, 1, 1, 1, 1, None, job_id="j", num_microbatches=1, start=False)


def test_instruction_names_and_1f1b_order() -> None:
    assert perseus.parse_kind("forward") == "forward"
    assert perseus.parse_kind("BackwardPass") == "backward"
    with pytest.raises(ValueError, match="must start with 'forward' or 'backward', got 'optimizer_step'"):
        perseus.parse_kind("optimizer_step")
    # Stage 1 of 4, M = 5: 3 warm-up forwards, alternate, drain (docs/architecture.md §4.2).
    assert perseus.one_f_one_b(4, 1, 5) == [
        ("forward", 0), ("forward", 1), ("forward", 2), ("backward", 0), ("forward", 3),
        ("backward", 1), ("forward", 4), ("backward", 2), ("backward", 3), ("backward", 4),
    ]
    assert perseus.one_f_one_b(4, 3, 2) == [("forward", 0), ("backward", 0), ("forward", 1), ("backward", 1)]


def test_misuse_of_hooks_is_reported_not_hidden() -> None:
    opt = perseus.PipelineFrequencyOptimizer(0, 0, 0, 0, 0, 1, 1, 1, 1, "127.0.0.1:1", job_id="j", num_microbatches=1, start=False)
    with pytest.raises(RuntimeError, match="without a matching on_instruction_begin"):
        opt.on_instruction_end("forward")


def test_services_down_at_start_then_recover(restartable_server: RestartableServer, client_logger: tuple[logging.Logger, WarningCounter]) -> None:
    logger, warnings = client_logger
    opt = make_client(restartable_server.address, logger, "client-down-at-start")
    try:
        # Nothing listens: training runs at default clocks (0) and is never blocked.
        for _ in range(20):
            assert run_iteration(opt) == [0] * (2 * M)
        assert wait_until(lambda: warnings.count("optimizer at") == 1 and warnings.count("GPU agent at") == 1, 10, step=lambda: run_iteration(opt))
        for _ in range(20):
            run_iteration(opt)
        st = opt.status()
        assert (st.optimizer_connected, st.agent_connected, st.schedule_version) == (False, False, 0)
        # Rate limited: one warning per service for the whole outage despite many retries.
        assert warnings.count("optimizer at") == 1
        assert warnings.count("GPU agent at") == 1
        assert warnings.count("profiler at") <= 1

        restartable_server.start()
        assert wait_until(lambda: opt.status().optimizer_connected and opt.schedule.phase == "PHASE_PROFILING", 30, step=lambda: run_iteration(opt))
        sched = opt.schedule
        assert sched.version > 0
        assert sched.reason.startswith("profiling 1410 MHz")
        # The new schedule applies from the next step on: every instruction at the sweep's first clock.
        assert run_iteration(opt) == [1410] * (2 * M)
        assert warnings.count("optimizer at") == 1
    finally:
        opt.close(timeout_s=3)


def test_server_killed_mid_run_keeps_last_schedule_and_reregisters(restartable_server: RestartableServer, client_logger: tuple[logging.Logger, WarningCounter]) -> None:
    logger, warnings = client_logger
    restartable_server.start()
    opt = make_client(restartable_server.address, logger, "client-killed-mid-run")
    try:
        assert wait_until(lambda: opt.schedule.phase == "PHASE_PROFILING" and opt.status().optimizer_registrations == 1, 30, step=lambda: run_iteration(opt))
        assert wait_until(lambda: opt.status().measurements_received > 0, 10, step=lambda: run_iteration(opt))
        before = opt.schedule
        restartable_server.kill()
        assert wait_until(lambda: not opt.status().optimizer_connected, 10, step=lambda: run_iteration(opt))
        # Down: the last schedule stays in force, instruction by instruction.
        last = opt.schedule
        assert last.version >= before.version
        for _ in range(10):
            assert run_iteration(opt) == [last.frequency(k, m) for k, m in ORDER_1STAGE]
        assert opt.schedule is last
        assert warnings.count("optimizer at") == 1

        restartable_server.start()  # same port, same state dir: the optimizer restores the job
        assert wait_until(lambda: opt.status().optimizer_registrations == 2 and opt.status().optimizer_connected, 30, step=lambda: run_iteration(opt))
        assert wait_until(lambda: opt.schedule.version >= last.version, 10, step=lambda: run_iteration(opt))
        assert opt.schedule.phase in ("PHASE_PROFILING", "PHASE_PLANNING", "PHASE_DEPLOYED")
        # The agent session comes back too (a new lease) and measurements resume.
        assert wait_until(lambda: opt.status().agent_sessions == 2 and opt.status().agent_connected, 30, step=lambda: run_iteration(opt))
        measured = opt.status().measurements_received
        assert wait_until(lambda: opt.status().measurements_received > measured, 10, step=lambda: run_iteration(opt))
        assert warnings.count("GPU agent at") == 1
        assert warnings.count("optimizer at") == 1
        assert restartable_server.starts == 2
    finally:
        opt.close(timeout_s=3)


def test_iterations_reach_the_optimizer(restartable_server: RestartableServer, client_logger: tuple[logging.Logger, WarningCounter]) -> None:
    logger, _ = client_logger
    restartable_server.start()
    opt = make_client(restartable_server.address, logger, "client-reports")
    try:
        assert wait_until(lambda: opt.schedule.version > 0, 30, step=lambda: run_iteration(opt))
        for _i in range(5):
            run_iteration(opt)
        assert opt.flush(timeout_s=10)
        st = opt.status()
        reported = opt.iterations()
        assert st.iterations_reported == len(reported) == opt.iteration
        assert [r.iteration for r in reported] == list(range(1, opt.iteration + 1))
        assert all(r.time_s > 0 for r in reported)
    finally:
        opt.close(timeout_s=3)


def test_close_is_bounded_with_everything_down(client_logger: tuple[logging.Logger, WarningCounter]) -> None:
    logger, _ = client_logger
    opt = make_client(f"127.0.0.1:{free_port()}", logger, "client-close")
    for _ in range(5):
        run_iteration(opt)
    assert opt.flush(timeout_s=0.5) is False  # nothing can be delivered
    opt.close(timeout_s=2)
    # Hooks after close are harmless no-ops for the network side.
    assert run_iteration(opt) == [0] * (2 * M)


def test_gpu_sync_is_pluggable_and_runs_before_every_timestamp() -> None:
    calls: list[str] = []
    opt = perseus.PipelineFrequencyOptimizer(
        0, 0, 0, 0, 0, 1, 1, 1, 1, "127.0.0.1:1", job_id="sync", num_microbatches=M,
        sync=lambda: calls.append("sync"), start=False,
    )
    run_iteration(opt, compute_s=0)
    # step begin + (begin + end) per instruction + step end
    assert len(calls) == 2 + 2 * len(ORDER_1STAGE)
    assert perseus.make_sync("none")() is None
    assert perseus.make_sync(None)() is None
    with pytest.raises(ValueError, match="sync: must be 'auto', 'torch', 'cupy', 'jax', 'none', None or a callable, got 'tpu'"):
        perseus.make_sync(cast(Any, "tpu"))


def test_agent_alone_down_mid_run_keeps_schedule_and_reconnects(client_logger: tuple[logging.Logger, WarningCounter]) -> None:
    import tempfile
    from pathlib import Path

    logger, warnings = client_logger
    with tempfile.TemporaryDirectory(prefix="perseus-split-") as tmp:
        services = RestartableServer(port=free_port(), state_dir=Path(tmp) / "all")
        agent = RestartableServer(port=free_port(), state_dir=Path(tmp) / "agent", extra_args=["agent"])
        services.state_dir.mkdir()
        agent.state_dir.mkdir()
        try:
            services.start()
            agent.start()
            opt = make_client(services.address, logger, "client-agent-down", agent_url=agent.address)
            try:
                assert wait_until(lambda: opt.schedule.phase == "PHASE_PROFILING" and opt.status().measurements_received > 0, 30, step=lambda: run_iteration(opt))
                agent.kill()
                assert wait_until(lambda: not opt.status().agent_connected, 10, step=lambda: run_iteration(opt))
                received = opt.status().measurements_received
                for _ in range(10):
                    clocks = run_iteration(opt)
                    # The optimizer is still up: its schedule still drives the requested clocks.
                    assert clocks == [opt._current.frequency(k, m) for k, m in ORDER_1STAGE]
                st = opt.status()
                assert st.optimizer_connected and st.measurements_received == received
                assert warnings.count("GPU agent at") == 1 and warnings.count("optimizer at") == 0
                agent.start()
                assert wait_until(lambda: opt.status().agent_sessions == 2 and opt.status().measurements_received > received, 30, step=lambda: run_iteration(opt))
                assert warnings.count("GPU agent at") == 1
            finally:
                opt.close(timeout_s=3)
        finally:
            agent.stop()
            services.stop()
