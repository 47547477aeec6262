"""The emulated pipeline trainer: one OS process per emulated GPU, real pipeline dependencies.

Each rank process runs the hooks of a real :class:`perseus.PipelineFrequencyOptimizer` around its
instructions, in its schedule's order (1F1B, or Megatron-LM's interleaved 1F1B over ``num_chunks``
model chunks per GPU). An instruction waits for its real input (the previous virtual stage's
activation over a pipe for a forward, the next one's gradient for a backward; under interleaved
1F1B the pipes form a ring, GPU N−1 feeding chunk c+1 of GPU 0), then sleeps the simulated GPU's
time for that (virtual stage, instruction) at the clock the hook asked the agent for (0 = default =
the highest clock), multiplied by ``time_scale`` and by the pipeline's straggler slowdown. Stage ``s`` of every
pipeline meets the same stage of the other pipelines at a barrier after its last backward: the
gradient all-reduce, which is where a straggling pipeline makes the others wait (extrinsic bloat).

The hooks' clock is ``monotonic_ns / time_scale``, and a simulated agent started with the same
``--agent-sim-time-scale`` runs its GPUs on that clock, so every service sees unscaled seconds:
the agent's measurements (time, and energy integrated over simulated time), the profiler's profile
and the planner's frontier are in real GPU units. An agent on another scale ends the rank's
session (its clock runs at another rate) rather than measure receipt gaps.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import queue
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from perseus.emulate.profile import load_profile
from perseus.pipeline import PipelineFrequencyOptimizer
from perseus.schedule import stage_order

_CTX = mp.get_context("spawn")  # grpc is not fork-safe; every rank starts a clean interpreter


@dataclass(frozen=True)
class EmulationSpec:
    """What to emulate and where the services are."""

    profile_csv: str
    """Stage profile the emulated GPUs follow (the agent's simulated backend should use the same)."""
    server_url: str
    """Optimizer (also agent and profiler unless given)."""
    job_id: str = "emulated-job"
    num_stages: int = 0
    """Pipeline stages (GPUs) N (0 = every stage of the profile, divided by ``num_chunks``)."""
    schedule: str = "1f1b"
    """``"1f1b"`` or ``"interleaved"`` (Megatron-LM's interleaved 1F1B)."""
    num_chunks: int = 1
    """Model chunks per GPU V under ``"interleaved"``: virtual stage c·N + r is chunk c of GPU r,
    and the profile needs N·V stages."""
    dp_degree: int = 2
    num_microbatches: int = 6
    time_scale: float = 1.0
    """Wall seconds per simulated second (0.25: an instruction sleeps a quarter of its GPU time).
    The simulated agent must run on the same scale (``--agent-sim-time-scale``): it refuses a
    client clock that runs at another rate than its own."""
    agent_url: str | None = None
    profiler_url: str | None = None
    baseline_iterations: int = 0
    """Iterations first run with a measure-only client (job ``<job_id>-baseline``, no optimizer);
    at most this many when the controller ends the baseline sooner (:meth:`EmulationHandle.end_baseline_soon`)."""
    max_iterations: int = 10_000
    """Hard stop (the controller normally stops the run earlier)."""
    gpu_model: str = "A100-SXM4-simulated"
    blocking_power_w: float = 0.0
    unit_time_s: float = 0.0
    profiling: dict[str, int] = field(default_factory=dict)
    lease_ttl_s: float = 0.0
    straggler_dp_rank: int = 1
    straggler_slowdown: float = 1.2
    straggler_epochs: tuple[int, ...] = (1, 2)
    """Epochs (see :meth:`EmulationHandle.set_epoch`) during which pipeline ``straggler_dp_rank``
    runs every instruction ``straggler_slowdown``× longer. Deriving the slowdown from the one epoch
    value keeps every rank's view of "is there a straggler" consistent with its epoch tag."""
    perseus: bool = True
    """False: no client at all (the trainer runs bare; for overhead and fail-safe comparisons)."""


@dataclass(frozen=True)
class IterationRecord:
    """One iteration of one rank, as the rank saw it (times in simulated seconds)."""

    rank: int
    dp_rank: int
    stage: int
    iteration: int
    client: str  # "baseline" (measure only), "perseus", or "none"
    epoch: int  # the controller's epoch read at step begin (see EmulationHandle.set_epoch)
    slowdown: float
    schedule_version: int
    phase: str
    reason: str
    expected_iteration_time_s: float
    expected_iteration_energy_j: float
    time_s: float
    energy_j: float
    busy_s: float
    """Measured GPU busy time (the agent's instruction times), s; the profile's when unmeasured."""
    expected_busy_s: float
    """What the profile says the instructions last at their clocks (× the slowdown), s."""
    compute_time_s: float
    """Step begin to the end of the rank's last backward, before the all-reduce wait, s."""
    measured_instructions: int
    frequencies_mhz: tuple[int, ...]


@dataclass
class _Shared:
    slowdown: Any  # mp.Array('d', dp)
    stop_at: Any  # mp.Value('q')
    baseline_until: Any  # mp.Value('q')
    epoch: Any  # mp.Value('i')
    progress: Any  # mp.Array('q', world)
    start: Any  # mp.Barrier(world)
    stage_barriers: list[Any]  # mp.Barrier(dp) per stage


def _sleep_until(deadline: float) -> None:
    """Sleeps until ``time.monotonic()`` reaches ``deadline``. time.sleep overshoots by the
    scheduler's slack; the last half millisecond is spun to keep the overshoot small on a quiet host."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if left > 0.0015:
            time.sleep(left - 0.001)
        elif left > 0.0002:
            time.sleep(0)
        # else spin


class _GpuClock:
    """The hooks' clock in an emulated rank (unscaled ns: ``monotonic_ns / time_scale``).

    Host noise enters an emulated measurement where a timestamp waits for the host: an instruction
    is a sleep, and on a busy machine the process wakes up late, so an End stamped "now" would
    count the host's lateness as GPU busy time at the instruction's clock (energy the emulated GPU
    never drew) and the sleep, started after the Begin hook returned, would add the hook's own
    delay too. Here an instruction lasts exactly its profile time from its Begin stamp and its End
    is stamped when the emulated GPU finished it; a late host then shows up where it does on real
    hardware: as idle time before the next instruction and a longer iteration (which the demo
    detects, see ``perseus.emulate.demo``).
    """

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.last = 0
        self._end: int | None = None

    def __call__(self) -> int:
        if self._end is not None:
            self.last, self._end = self._end, None
        else:
            self.last = int(time.monotonic_ns() / self.scale)
        return self.last

    def run(self, begin_ns: int, duration_s: float) -> None:
        """Sleeps until the instruction begun at ``begin_ns`` is done; the next read is its end."""
        end = begin_ns + int(duration_s * 1e9)
        _sleep_until(end * self.scale / 1e9)
        self._end = end


def _rank_main(
    spec: EmulationSpec,
    rank: int,
    dp_rank: int,
    stage: int,
    num_stages: int,
    prev_conn: multiprocessing.connection.Connection | None,
    next_conn: multiprocessing.connection.Connection | None,
    shared: _Shared,
    out: Any,
) -> None:
    logging.basicConfig(level=os.environ.get("PERSEUS_EMULATE_LOG_LEVEL", "WARNING"), format=f"[rank {rank}] %(message)s")
    # The I/O thread must not hold the GIL for a whole default 5 ms switch interval while this
    # rank's next instruction is due: that latency would show up as emulated GPU idle time.
    sys.setswitchinterval(0.0002)
    profile = load_profile(spec.profile_csv)
    scale = spec.time_scale
    order = stage_order(spec.schedule, num_stages, stage, spec.num_microbatches, spec.num_chunks)
    last = num_stages * spec.num_chunks - 1
    max_clock = profile.max_frequency_mhz
    world = num_stages * spec.dp_degree

    clock_ns = _GpuClock(scale)

    def make_client(baseline: bool) -> PipelineFrequencyOptimizer | None:
        if not spec.perseus:
            return None
        return PipelineFrequencyOptimizer(
            rank, dp_rank, stage, 0, rank, spec.dp_degree, num_stages, 1, world,
            None if baseline else spec.server_url,
            agent_url=spec.agent_url or spec.server_url,
            profiler_url=None if baseline else spec.profiler_url,
            job_id=f"{spec.job_id}-baseline" if baseline else spec.job_id,
            num_microbatches=spec.num_microbatches,
            schedule=spec.schedule,
            num_chunks=spec.num_chunks,
            sync="none",
            gpu_model=spec.gpu_model,
            supported_frequencies_mhz=profile.frequencies_mhz,
            blocking_power_w=spec.blocking_power_w,
            unit_time_s=spec.unit_time_s,
            profiling=spec.profiling,
            lease_ttl_s=spec.lease_ttl_s,
            clock_ns=clock_ns,
            warn_if_simulated=False,  # emulated by design; the demo labels every figure so
            retry_max_s=1.0,
            batch_interval_s=0.25,
        )

    iteration = 0
    sent: set[int] = set()
    segments = [True, False] if spec.baseline_iterations > 0 else [False]
    for baseline in segments:
        opt = make_client(baseline)
        local: dict[int, tuple[Any, ...]] = {}
        shared.start.wait()
        try:
            while True:
                if baseline and iteration >= min(spec.baseline_iterations, shared.baseline_until.value):
                    break
                iteration += 1
                if iteration > min(shared.stop_at.value, spec.max_iterations):
                    return
                shared.progress[rank] = iteration
                epoch = shared.epoch.value
                slowdown = shared.slowdown[dp_rank]
                if dp_rank == spec.straggler_dp_rank and epoch in spec.straggler_epochs:
                    slowdown *= spec.straggler_slowdown
                t0 = clock_ns()
                if opt is not None:
                    opt.on_step_begin(iteration)
                    sched = opt._current  # the version this iteration runs (fixed at step begin)
                else:
                    sched = None
                freqs: list[int] = []
                busy = 0.0
                for kind, mb, chunk in order:
                    v = chunk * num_stages + stage  # the virtual stage (= stage unless interleaved)
                    if kind == "forward" and v > 0:
                        assert prev_conn is not None
                        got = prev_conn.recv()
                        assert got == (iteration, mb, v - 1), (got, iteration, mb, v - 1)
                    elif kind == "backward" and v < last:
                        assert next_conn is not None
                        got = next_conn.recv()
                        assert got == (iteration, mb, v + 1), (got, iteration, mb, v + 1)
                    # The chunk is passed as Megatron's schedule knows it; the client checks it
                    # against the deployed order.
                    freq = opt.on_instruction_begin(kind, chunk=chunk) if opt is not None else 0
                    begin_ns = clock_ns.last if opt is not None else clock_ns()
                    f = freq or max_clock
                    freqs.append(f)
                    dur = profile.time_s(v, kind, f) * slowdown
                    busy += dur
                    clock_ns.run(begin_ns, dur)
                    if opt is not None:
                        opt.on_instruction_end(kind)
                    else:
                        clock_ns()
                    if kind == "forward" and v < last:
                        assert next_conn is not None
                        next_conn.send((iteration, mb, v))
                    elif kind == "backward" and v > 0:
                        assert prev_conn is not None
                        prev_conn.send((iteration, mb, v))
                t_compute = clock_ns.last  # the end of this rank's last backward
                # Gradient all-reduce of this stage across pipelines: every pipeline's stage waits
                # here for the slowest one, so each rank's step ends only after the slowest pipeline
                # finished this stage's backwards (what makes wall times equal under DP).
                shared.stage_barriers[stage].wait()
                t1 = clock_ns()
                if opt is not None:
                    opt.on_step_end()
                local[iteration] = (
                    epoch,
                    slowdown,
                    sched.version if sched else 0,
                    sched.phase if sched else "",
                    sched.reason if sched else "",
                    sched.expected_iteration_time_s if sched else 0.0,
                    sched.expected_iteration_energy_j if sched else 0.0,
                    tuple(freqs),
                    (t1 - t0) / 1e9,
                    busy,
                    (t_compute - t0) / 1e9,
                )
                _forward_records(opt, local, sent, out, rank, dp_rank, stage, baseline, spec.perseus)
        finally:
            if opt is not None:
                opt.flush(timeout_s=3.0)
                _forward_records(opt, local, sent, out, rank, dp_rank, stage, baseline, spec.perseus, final=True)
                opt.close(timeout_s=3.0)


def _forward_records(
    opt: PipelineFrequencyOptimizer | None,
    local: dict[int, tuple[Any, ...]],
    sent: set[int],
    out: Any,
    rank: int,
    dp_rank: int,
    stage: int,
    baseline: bool,
    perseus: bool,
    final: bool = False,
) -> None:
    client = "none" if not perseus else ("baseline" if baseline else "perseus")
    reported = {r.iteration: r for r in opt.iterations()} if opt is not None else {}
    for it in sorted(local):
        if it in sent:
            continue
        rep = reported.get(it)
        if opt is not None and rep is None and not final:
            continue
        epoch, slowdown, version, phase, reason, exp_t, exp_e, freqs, local_t, local_busy, local_compute = local[it]
        out.put(
            asdict(
                IterationRecord(
                    rank=rank,
                    dp_rank=dp_rank,
                    stage=stage,
                    iteration=it,
                    client=client,
                    epoch=epoch,
                    slowdown=slowdown,
                    schedule_version=version,
                    phase=phase,
                    reason=reason,
                    expected_iteration_time_s=exp_t,
                    expected_iteration_energy_j=exp_e,
                    time_s=rep.time_s if rep else local_t,
                    energy_j=rep.energy_j if rep else 0.0,
                    busy_s=rep.busy_s if rep and rep.measured_instructions else local_busy,
                    expected_busy_s=local_busy,
                    compute_time_s=rep.compute_time_s if rep and rep.compute_time_s else local_compute,
                    measured_instructions=rep.measured_instructions if rep else 0,
                    frequencies_mhz=freqs,
                )
            )
        )
        sent.add(it)
        del local[it]


class EmulationHandle:
    """A running emulation: the rank processes and the controls the demo drives."""

    def __init__(self, spec: EmulationSpec) -> None:
        profile = load_profile(spec.profile_csv)
        v = spec.num_chunks
        if spec.schedule not in ("1f1b", "interleaved"):
            raise ValueError(f"schedule must be '1f1b' or 'interleaved', got {spec.schedule!r}")
        if (spec.schedule == "interleaved") != (v > 1):
            raise ValueError(f"num_chunks must be >= 2 exactly when schedule is 'interleaved', got {v} with {spec.schedule!r}")
        n = spec.num_stages or profile.num_stages // v
        if n < 1 or n * v > profile.num_stages:
            raise ValueError(f"num_stages × num_chunks must be <= the profile's {profile.num_stages} stages, got {n} × {v}")
        stage_order(spec.schedule, n, 0, spec.num_microbatches, v)  # refuses M not a multiple of N
        self.spec = spec
        self.num_stages = n
        self.world_size = n * spec.dp_degree
        self.profile = profile
        self._out: Any = _CTX.Queue()
        self._shared = _Shared(
            slowdown=_CTX.Array("d", [1.0] * spec.dp_degree),
            stop_at=_CTX.Value("q", spec.max_iterations),
            baseline_until=_CTX.Value("q", spec.baseline_iterations),
            epoch=_CTX.Value("i", 0),
            progress=_CTX.Array("q", [0] * self.world_size),
            start=_CTX.Barrier(self.world_size),
            stage_barriers=[_CTX.Barrier(spec.dp_degree) for _ in range(n)],
        )
        self._procs: list[Any] = []
        ring = v > 1  # interleaved: GPU N−1 feeds GPU 0's next chunk (and gets its gradients back)
        for dp in range(spec.dp_degree):
            conns: list[tuple[Any, Any]] = [_CTX.Pipe(duplex=True) for _ in range(n if ring else n - 1)]
            for s in range(n):
                rank = dp * n + s
                prev_conn = conns[(s - 1) % n][1] if s > 0 or ring else None
                next_conn = conns[s][0] if s < n - 1 or ring else None
                p = _CTX.Process(
                    target=_rank_main,
                    args=(spec, rank, dp, s, n, prev_conn, next_conn, self._shared, self._out),
                    name=f"perseus-emulated-rank{rank}",
                    daemon=True,
                )
                self._procs.append(p)

    def start(self) -> EmulationHandle:
        for p in self._procs:
            p.start()
        return self

    def set_slowdown(self, dp_rank: int, slowdown: float) -> None:
        """Makes pipeline ``dp_rank`` a straggler (every instruction ``slowdown``× longer) from its
        next iteration; 1.0 clears it."""
        self._shared.slowdown[dp_rank] = slowdown

    def set_epoch(self, epoch: int) -> None:
        """Tags iterations begun from now on (the demo's phase bookkeeping); in the spec's
        ``straggler_epochs`` the straggler pipeline is slowed."""
        self._shared.epoch.value = epoch

    def progress(self) -> int:
        """Highest iteration any rank has begun."""
        return int(max(self._shared.progress[:]))

    def end_baseline_soon(self) -> int:
        """Lets every rank finish the iteration after the current one with the measure-only client,
        then switch to the optimizer. Returns that last baseline iteration."""
        at = self.progress() + 1
        self._shared.baseline_until.value = at
        return at

    def stop_soon(self) -> int:
        """Lets every rank finish the iteration after the current one, then stop. Returns it."""
        at = self.progress() + 1
        self._shared.stop_at.value = at
        return at

    def records(self, timeout_s: float = 0.1) -> Iterator[dict[str, Any]]:
        """Iteration records that arrived (non-blocking after the first ``timeout_s``)."""
        try:
            yield self._out.get(timeout=timeout_s)
            while True:
                yield self._out.get_nowait()
        except queue.Empty:
            return

    def alive(self) -> bool:
        return any(p.is_alive() for p in self._procs)

    def failed(self) -> list[int]:
        """Exit codes of ranks that died with an error."""
        return [p.exitcode for p in self._procs if p.exitcode not in (None, 0)]

    def join(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        for p in self._procs:
            p.join(max(0.0, deadline - time.monotonic()))
        return not self.alive()

    def terminate(self) -> None:
        for p in self._procs:
            if p.is_alive():
                p.terminate()
        for p in self._procs:
            p.join(5)


def run_emulation(spec: EmulationSpec, iterations: int, timeout_s: float = 300.0) -> list[dict[str, Any]]:
    """Runs ``iterations`` iterations (after any baseline ones) and returns every record."""
    handle = EmulationHandle(spec)
    handle._shared.stop_at.value = spec.baseline_iterations + iterations
    handle.start()
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            records.extend(handle.records(0.2))
            if not handle.alive():
                records.extend(handle.records(0.2))
                break
        if handle.failed():
            raise RuntimeError(f"emulated ranks failed with exit codes {handle.failed()}")
        if handle.alive():
            raise TimeoutError(f"emulation did not finish within {timeout_s}s")
        return records
    finally:
        handle.terminate()
