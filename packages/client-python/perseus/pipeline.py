"""``PipelineFrequencyOptimizer``: the four hooks a pipeline-parallel trainer calls.

Moving from Zeus is a one-line change: the constructor takes the same leading arguments and the
hooks have the same names. Every network call happens on a background thread; a hook costs a GPU
sync (if configured), a clock read and one queue append.

Example (one rank of a 2-stage pipeline)::

    import perseus

    opt = perseus.PipelineFrequencyOptimizer(
        rank=rank, dp_rank=0, pp_rank=rank, tp_rank=0, device_id=0,
        dp_degree=1, pp_degree=2, tp_degree=1, world_size=2,
        server_url="127.0.0.1:50051", job_id="my-job", num_microbatches=4, sync="torch",
    )
    for batch in loader:
        with opt.step():
            for kind, mb in my_1f1b_order:
                with opt.instruction(kind):
                    run(kind, mb)
    opt.close()
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc

from perseus._config import ClientConfig
from perseus._io import EV_BEGIN, EV_END, EV_FLUSH, EV_STEP_BEGIN, EV_STEP_END, EV_STOP, IoCore
from perseus._records import ClientStatus, ReceivedMeasurement, ReportedIteration, StragglerAck
from perseus._warn import RateLimitedWarner
from perseus.common.v1 import common_pb2
from perseus.errors import ConfigurationError
from perseus.launch import Placement, agreed_job_id, launcher_job_id, placement
from perseus.optimizer.v1 import optimizer_pb2
from perseus.schedule import DEFAULT_SCHEDULE, SCHEDULES, Kind, RankSchedule, parse_kind, stage_order
from perseus.security import LINKS, resolve_security
from perseus.sync import SyncSpec, make_sync

__all__ = ["PipelineFrequencyOptimizer"]

_STATUS_BY_NAME = {code.name: code for code in grpc.StatusCode}

_SCHEDULE_KINDS: dict[str, common_pb2.ScheduleKind.ValueType] = {
    "1f1b": common_pb2.SCHEDULE_KIND_1F1B,
    "gpipe": common_pb2.SCHEDULE_KIND_GPIPE,
    "interleaved": common_pb2.SCHEDULE_KIND_INTERLEAVED_1F1B,
}
assert set(_SCHEDULE_KINDS) == set(SCHEDULES)


def _discard(_event: tuple[Any, ...]) -> None:
    return None


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


class PipelineFrequencyOptimizer:
    """Applies the optimizer's per-instruction GPU clocks to one pipeline rank.

    Args:
        rank: Global rank in ``[0, world_size)``. Rank 0 registers the job.
        dp_rank: Data-parallel index (which pipeline).
        pp_rank: Pipeline stage.
        tp_rank: Tensor-parallel index.
        device_id: Local GPU index of this rank (the agent's device index).
        dp_degree: Number of pipelines.
        pp_degree: Number of stages ``N``.
        tp_degree: Tensor-parallel degree.
        world_size: Must equal ``dp_degree * pp_degree * tp_degree``.
        server_url: The optimizer (``host:port``, ``unix:/path``; a ``grpc://`` or ``http://``
            prefix is accepted for Zeus compatibility). ``None`` = measure only: no optimizer (the
            device stays at its default clocks) and, unless ``profiler_url`` is given, no profiler;
            ``agent_url`` is then required. Useful to measure a baseline.
        job_metadata: Zeus compatibility: used as the job id when ``job_id`` is not given.
        agent_url: The node's GPU agent (default ``PERSEUS_AGENT_URL``, else ``server_url`` —
            right for the all-in-one ``perseus serve``).
        profiler_url: The profiler (default ``PERSEUS_PROFILER_URL``, else ``server_url``).
        job_id: Job id shared by all ranks (default ``PERSEUS_JOB_ID``, ``job_metadata``,
            ``TORCHELASTIC_RUN_ID``, Slurm's ``SLURM_JOB_ID``, else a fresh id the ranks agree on
            through torch.distributed; see :func:`perseus.launch.agreed_job_id`).
        num_microbatches: Microbatches per iteration ``M`` (default ``PERSEUS_NUM_MICROBATCHES``).
        schedule: Pipeline schedule, ``"1f1b"``, ``"gpipe"`` or ``"interleaved"`` (Megatron-LM's
            interleaved 1F1B; needs ``num_chunks`` >= 2 and ``num_microbatches`` a multiple of
            ``pp_degree``).
        num_chunks: Model chunks per GPU ``V`` under ``"interleaved"`` (Megatron-LM's
            ``virtual_pipeline_model_parallel_size``); 1 otherwise.
        sync: GPU sync before each timestamp: ``"auto"``, ``"torch"``, ``"cupy"``, ``"jax"``,
            ``"none"``/``None``, or a callable. See :mod:`perseus.sync`.
        gpu_model: GPU model name sent with the job (e.g. ``"A100-SXM4"``).
        node: Host name of this rank (default: ``socket.gethostname()``).
        supported_frequencies_mhz: SM clocks of the device; by default the agent's list.
        blocking_power_w: Power of a GPU blocked on a neighbour, W (0 = let the optimizer measure).
        unit_time_s: Planner time unit τ, s (0 = optimizer default).
        profiling: Online profiling options: ``iterations_per_frequency``,
            ``floor_frequency_mhz``, ``frequency_stride``.
        lease_ttl_s: Agent lease TTL without traffic, s (0 = agent default).
        clock_ns: Monotonic clock for timestamps, ns. Only emulators replace it (e.g. a scaled
            clock when instructions sleep a fraction of their simulated time).
        retry_max_s: Longest pause between reconnect attempts, s.
        batch_interval_s: How often measurements are sent to the profiler, s.
        warn_interval_s: At most one warning per service per this many seconds.
        keep_measurements: How many received measurements :meth:`measurements` keeps.
        logger: Logger for warnings (default ``logging.getLogger("perseus")``).
        start: Start the background thread at once (otherwise on :meth:`start`).
        warn_if_simulated: Log one warning when the agent's GPU is simulated (``status().simulated``
            says so either way).
        token, token_file, tls_ca_file, tls_cert_file, tls_key_file: TLS and bearer token for all
            three links; each also comes from ``PERSEUS_<LINK>_<NAME>`` / ``PERSEUS_<NAME>``
            (see :mod:`perseus.security`).

    Failure behaviour: no Perseus failure stops or slows training. While the agent is unreachable
    the device runs at its default clocks; while the optimizer is unreachable the last schedule
    stays in force; measurements for an unreachable profiler are buffered (bounded) and re-sent.
    One warning per outage and service (rate-limited); every link reconnects by itself.

    Permanent rejections are not outages: a service answering ``INVALID_ARGUMENT``,
    ``FAILED_PRECONDITION``, ``NOT_FOUND``, ``PERMISSION_DENIED`` or ``UNAUTHENTICATED`` (wrong job
    or spec, a device leased by another job, a bad token) stops that link for good: one error
    line, default clocks from that link, the failure in :meth:`status` ``.failures``, and
    :meth:`wait_ready` raises :class:`perseus.ConfigurationError`.
    """

    def __init__(
        self,
        rank: int,
        dp_rank: int,
        pp_rank: int,
        tp_rank: int,
        device_id: int,
        dp_degree: int,
        pp_degree: int,
        tp_degree: int,
        world_size: int,
        server_url: str | None,
        job_metadata: str | None = None,
        *,
        agent_url: str | None = None,
        profiler_url: str | None = None,
        job_id: str | None = None,
        num_microbatches: int | None = None,
        schedule: str = "1f1b",
        num_chunks: int = 1,
        sync: SyncSpec = "auto",
        gpu_model: str = "",
        node: str | None = None,
        supported_frequencies_mhz: Sequence[int] | None = None,
        blocking_power_w: float = 0.0,
        unit_time_s: float = 0.0,
        profiling: Mapping[str, int] | None = None,
        lease_ttl_s: float = 0.0,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        retry_max_s: float = 5.0,
        batch_interval_s: float = 0.5,
        warn_interval_s: float = 60.0,
        keep_measurements: int = 100_000,
        logger: logging.Logger | None = None,
        start: bool = True,
        token: str | None = None,
        token_file: str | None = None,
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        warn_if_simulated: bool = True,
    ) -> None:
        for name, value, upper in (
            ("dp_rank", dp_rank, dp_degree),
            ("pp_rank", pp_rank, pp_degree),
            ("tp_rank", tp_rank, tp_degree),
            ("rank", rank, world_size),
        ):
            if not 0 <= value < upper:
                raise ValueError(f"{name} must be in [0, {upper}), got {value}")
        if world_size != dp_degree * pp_degree * tp_degree:
            raise ValueError(f"world_size must equal dp_degree * pp_degree * tp_degree = {dp_degree * pp_degree * tp_degree}, got {world_size}")
        if num_microbatches is None:
            env_m = _env("PERSEUS_NUM_MICROBATCHES")
            if env_m is None:
                raise ValueError("num_microbatches is required (or set PERSEUS_NUM_MICROBATCHES)")
            num_microbatches = int(env_m)
        if num_microbatches < 1:
            raise ValueError(f"num_microbatches must be >= 1, got {num_microbatches}")
        if schedule not in _SCHEDULE_KINDS:
            raise ValueError(f"schedule must be one of {sorted(_SCHEDULE_KINDS)}, got {schedule!r}")
        if schedule != "interleaved" and num_chunks != 1:
            raise ValueError(f"num_chunks must be 1 unless schedule is 'interleaved', got {num_chunks}")
        # The order this rank runs (raises for an interleaved shape the services would refuse):
        # the hooks map the k-th forward (backward) to its microbatch and chunk by it, and every
        # schedule the optimizer sends must list exactly these instructions.
        order = stage_order(schedule, pp_degree, pp_rank, num_microbatches, num_chunks)
        resolved_agent = agent_url or _env("PERSEUS_AGENT_URL") or server_url
        if not resolved_agent:
            raise ValueError("agent_url is required when server_url is None (or set PERSEUS_AGENT_URL)")
        resolved_job = job_id or _env("PERSEUS_JOB_ID") or job_metadata or launcher_job_id() or agreed_job_id(world_size)
        security = {
            link: resolve_security(link, token=token, token_file=token_file, tls_ca_file=tls_ca_file, tls_cert_file=tls_cert_file, tls_key_file=tls_key_file)
            for link in LINKS
        }
        self.rank = rank
        self.dp_rank = dp_rank
        self.pp_rank = pp_rank
        self.tp_rank = tp_rank
        self.device_id = device_id
        self.job_id = resolved_job
        self.num_microbatches = num_microbatches
        self._logger = logger or logging.getLogger("perseus")
        self._sync = make_sync(sync, device_id)
        self._clock = clock_ns
        prof = dict(profiling or {})
        cfg = ClientConfig(
            job_id=resolved_job,
            rank=common_pb2.RankIdentity(rank=rank, dp_rank=dp_rank, pp_rank=pp_rank, tp_rank=tp_rank),
            device_index=device_id,
            dp_degree=dp_degree,
            pp_degree=pp_degree,
            tp_degree=tp_degree,
            world_size=world_size,
            num_microbatches=num_microbatches,
            schedule_kind=_SCHEDULE_KINDS[schedule],
            schedule_name=schedule,
            num_chunks=num_chunks,
            order=tuple(order),
            optimizer_url=server_url,
            agent_url=resolved_agent,
            profiler_url=profiler_url or (_env("PERSEUS_PROFILER_URL") or server_url if server_url else None),
            security=security,
            node=node or socket.gethostname(),
            gpu_model=gpu_model,
            supported_frequencies_mhz=sorted({int(f) for f in (supported_frequencies_mhz or [])}, reverse=True),
            blocking_power_w=blocking_power_w,
            unit_time_s=unit_time_s,
            profiling=optimizer_pb2.ProfilingOptions(
                iterations_per_frequency=int(prof.get("iterations_per_frequency", 0)),
                floor_frequency_mhz=int(prof.get("floor_frequency_mhz", 0)),
                frequency_stride=int(prof.get("frequency_stride", 0)),
            ),
            lease_ttl_s=lease_ttl_s,
            retry_max_s=retry_max_s,
            batch_interval_s=batch_interval_s,
            batch_max=2000,
            iteration_report_timeout_s=2.0,
            keep_measurements=keep_measurements,
            logger=self._logger,
            warner=RateLimitedWarner(self._logger, warn_interval_s),
            warn_if_simulated=warn_if_simulated,
        )
        self._events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._put: Callable[[tuple[Any, ...]], None] = self._events.put
        self._io = IoCore(cfg, self._events, self._on_schedule)
        # Written by the I/O thread (one reference assignment, atomic under the GIL); read by the
        # hooks once per step so an iteration never mixes two schedule versions.
        self._latest: RankSchedule = DEFAULT_SCHEDULE
        self._current: RankSchedule = DEFAULT_SCHEDULE
        self._clocks: Mapping[tuple[Kind, int, int], int] = DEFAULT_SCHEDULE.clocks
        self._order = order
        self._slots: dict[Kind, list[tuple[int, int]]] = {
            kind: [(mb, c) for k, mb, c in order if k == kind] for kind in ("forward", "backward")
        }
        self._pos = 0
        self._order_warned = 0
        self._mismatches = 0
        self._iteration = 0
        self._in_step = False
        self._seq = 0
        self._open_seq = 0
        self._open_kind: Kind | None = None
        self._fwd = 0
        self._bwd = 0
        self._kinds: dict[str, Kind] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        if start:
            self.start()

    @classmethod
    def from_environment(
        cls,
        server_url: str | None,
        *,
        pp_degree: int,
        tp_degree: int = 1,
        dp_degree: int | None = None,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> PipelineFrequencyOptimizer:
        """Builds the client of this process from its launcher's environment (torchrun or Slurm):
        rank, world size, local rank, GPU and job id come from there (see :mod:`perseus.launch`);
        only the service URL and the parallel degrees are needed. ``dp_degree`` defaults to
        ``world_size / (pp_degree * tp_degree)``. Ranks follow the Megatron-LM / DeepSpeed layout
        (tensor-parallel fastest, then data-parallel, then pipeline). ``kwargs`` go to the
        constructor (``num_microbatches``, ``job_id``, ``device_id`` to override the GPU, ...)."""
        e = os.environ if env is None else env
        where: Placement = placement(e)
        world = where.world_size
        if pp_degree < 1 or tp_degree < 1:
            raise ValueError(f"pp_degree and tp_degree must be >= 1, got {pp_degree}, {tp_degree}")
        if dp_degree is None:
            if world % (pp_degree * tp_degree):
                raise ValueError(f"world size {world} ({where.launcher}) is not a multiple of pp_degree * tp_degree = {pp_degree * tp_degree}")
            dp_degree = world // (pp_degree * tp_degree)
        rank = where.rank
        tp_rank = rank % tp_degree
        dp_rank = (rank // tp_degree) % dp_degree
        pp_rank = rank // (tp_degree * dp_degree)
        device_id = int(kwargs.pop("device_id", where.device_id))
        if "job_id" not in kwargs and not _env("PERSEUS_JOB_ID"):
            kwargs["job_id"] = e.get("PERSEUS_JOB_ID") or launcher_job_id(e)
        return cls(rank, dp_rank, pp_rank, tp_rank, device_id, dp_degree, pp_degree, tp_degree, world, server_url, **kwargs)

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the background I/O (idempotent)."""
        if self._threads:
            return
        pump = threading.Thread(target=self._io.run_pump, name=f"perseus-pump-r{self.rank}", daemon=True)
        self._threads = [pump]
        self._io.start_on_shared_loop()
        pump.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Flushes what can be sent within ``timeout_s`` and stops the background thread.

        Closing the agent session makes the agent reset the device to its default clocks.
        """
        if self._closed:
            return
        self._closed = True
        if not self._threads:
            return
        self._io.request_stop(grace_s=max(0.0, timeout_s * 0.6))
        self._events.put((EV_STOP,))
        # Hooks called after close() must not grow a queue nobody drains.
        self._put = _discard
        self._io.wait_stopped(timeout_s)
        for t in self._threads:
            t.join(timeout=max(0.1, timeout_s * 0.2))

    def __enter__(self) -> PipelineFrequencyOptimizer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Waits until every event so far has been measured by the agent and acknowledged by the
        profiler and optimizer, or ``timeout_s`` passed. Returns whether everything was delivered.
        Not for the training loop (it blocks); for tests, shutdown and emulators."""
        if not self._threads or self._closed:
            return False
        done = threading.Event()
        result: list[bool] = []
        self._put((EV_FLUSH, done, time.monotonic() + timeout_s, result))
        done.wait(timeout_s + 1.0)
        return bool(result and result[0])

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        """Blocks until the agent session is open and (with an optimizer) the first schedule has
        arrived, or ``timeout_s`` passed; returns whether it is ready. Optional: the hooks work
        before that (at default clocks, unmeasured); call it before training when every
        instruction should be measured from the first step on.

        Raises :class:`perseus.ConfigurationError` as soon as a service has rejected this client
        permanently (wrong job or spec, a device leased by another job, a missing token): waiting
        longer would not help. An outage (a service down) only makes it return False.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            st = self._io.status()
            for failure in st.failures.values():
                raise ConfigurationError(failure.link, _STATUS_BY_NAME[failure.code], failure.message, failure.violations)
            ready = st.agent_connected and (self._io.cfg.optimizer_url is None or (st.optimizer_connected and self._latest.version > 0))
            if ready or time.monotonic() >= deadline:
                return ready
            time.sleep(0.01)

    def report_straggler(
        self,
        dp_rank: int,
        *,
        slowdown: float | None = None,
        iteration_time_s: float | None = None,
        recovered: bool = False,
        expires_after_s: float = 0.0,
        timeout_s: float = 10.0,
    ) -> StragglerAck:
        """Tells the optimizer that pipeline ``dp_rank`` straggles (exactly one of ``slowdown``,
        e.g. 1.2, ``iteration_time_s``, or ``recovered=True``). The report lapses after
        ``expires_after_s`` (0 = until recovered). Blocking (one RPC); any rank may call it.

        Raises :class:`perseus.ConfigurationError` when the optimizer rejects the report, and
        ``ConnectionError`` when it cannot be reached within ``timeout_s``.
        """
        given = [slowdown is not None, iteration_time_s is not None, recovered]
        if sum(given) != 1:
            raise ValueError("report_straggler needs exactly one of slowdown, iteration_time_s, recovered=True")
        if self._io.cfg.optimizer_url is None:
            raise ValueError("report_straggler needs an optimizer (server_url is None: measure only)")
        req = optimizer_pb2.ReportStragglerRequest(job_id=self.job_id, dp_rank=dp_rank, expires_after_s=expires_after_s)
        if slowdown is not None:
            req.slowdown = slowdown
        elif iteration_time_s is not None:
            req.iteration_time_s = iteration_time_s
        else:
            req.recovered = True
        return self._io.call_report_straggler(req, timeout_s)

    # ---- hooks (training thread; microseconds, never block on the network) -----------------------

    def on_step_begin(self, iteration: int | None = None) -> None:
        """Marks the start of an iteration; the newest schedule takes effect from here.

        ``iteration`` is the trainer's own step number (reported to the services); by default the
        client counts from 1.
        """
        if self._in_step:
            self.on_step_end()
        self._sync()
        t = self._clock()
        self._iteration = self._iteration + 1 if iteration is None else iteration
        self._in_step = True
        self._fwd = 0
        self._bwd = 0
        self._pos = 0
        sched = self._latest
        self._current = sched
        self._clocks = sched.clocks
        self._put((EV_STEP_BEGIN, self._iteration, t))

    def on_step_end(self) -> None:
        """Marks the end of an iteration (after the optimizer step)."""
        if not self._in_step:
            return
        if self._open_kind is not None:
            self.on_instruction_end(self._open_kind)
        self._sync()
        t = self._clock()
        self._in_step = False
        self._put((EV_STEP_END, self._iteration, t, self._current.version))

    def on_instruction_begin(self, name: str, chunk: int | None = None) -> int:
        """Marks the start of a forward or backward computation of the next microbatch.

        ``name`` starts with ``"forward"`` or ``"backward"``. Returns the SM clock (MHz) requested
        for it from the agent (0 = default clocks).

        The k-th forward (backward) of an iteration is the k-th forward (backward) of this rank's
        schedule order, which gives its microbatch and, under interleaved 1F1B, its model chunk
        (Megatron-LM's order; see :func:`perseus.schedule.interleaved`). ``chunk`` (optional) is
        the model chunk the trainer is about to run, e.g. Megatron's ``model_chunk_id``; when it
        differs from the order's, the trainer does not run the deployed schedule: the instruction
        runs at default clocks, is measured under the given chunk, and :meth:`status` counts it in
        ``order_mismatches`` (one rate-limited warning).
        """
        kind = self._kinds.get(name)
        if kind is None:
            kind = self._kinds[name] = parse_kind(name)
        if not self._in_step:
            self.on_step_begin()
        if self._open_kind is not None:
            self.on_instruction_end(self._open_kind)
        if kind == "forward":
            k = self._fwd
            self._fwd = k + 1
        else:
            k = self._bwd
            self._bwd = k + 1
        slots = self._slots[kind]
        mb, c = slots[k] if k < len(slots) else (k, 0)
        pos = self._pos
        self._pos = pos + 1
        if (chunk is not None and chunk != c) or (pos < len(self._order) and self._order[pos][0] != kind) or k >= len(slots):
            c = self._order_mismatch(kind, k, pos, c, chunk)
            freq = 0
        else:
            freq = self._clocks.get((kind, mb, c), 0)
        self._sync()
        t = self._clock()
        seq = self._seq + 1
        self._seq = seq
        self._open_seq = seq
        self._open_kind = kind
        self._put((EV_BEGIN, seq, self._iteration, kind, mb, freq, t, c))
        return freq

    def _order_mismatch(self, kind: Kind, k: int, pos: int, expected_chunk: int, chunk: int | None) -> int:
        """The trainer's instruction is not the one this rank's schedule order has next: counts
        it, warns (rate-limited), and returns the chunk to measure it under (the trainer's word)."""
        self._mismatches += 1
        expected = self._order[pos] if pos < len(self._order) else None
        there = "nothing" if expected is None else f"{expected[0]} of microbatch {expected[1]} chunk {expected[2]}"
        got = f"{kind} #{k}" + ("" if chunk is None else f" of chunk {chunk}")
        self._io.cfg.warner.warn(
            "order-mismatch",
            "perseus: rank %d iteration %d instruction %d is %s, but this rank's %s order has %s there; "
            "it runs at default clocks (check schedule, num_chunks and num_microbatches)",
            self.rank, self._iteration, pos, got, self._io.cfg.schedule_name, there,
        )
        return expected_chunk if chunk is None else chunk

    def on_instruction_end(self, name: str) -> None:
        """Marks the end of the computation begun by the matching :meth:`on_instruction_begin`."""
        if self._open_kind is None:
            raise RuntimeError(f"on_instruction_end({name!r}) without a matching on_instruction_begin")
        self._sync()
        t = self._clock()
        self._open_kind = None
        self._put((EV_END, self._open_seq, t))

    @contextlib.contextmanager
    def step(self, iteration: int | None = None) -> Iterator[None]:
        """``with opt.step():`` wraps one iteration."""
        self.on_step_begin(iteration)
        try:
            yield
        finally:
            self.on_step_end()

    @contextlib.contextmanager
    def instruction(self, name: str, chunk: int | None = None) -> Iterator[int]:
        """``with opt.instruction("forward") as mhz:`` wraps one forward/backward computation
        (``chunk``: see :meth:`on_instruction_begin`)."""
        freq = self.on_instruction_begin(name, chunk)
        try:
            yield freq
        finally:
            self.on_instruction_end(name)

    # ---- introspection -------------------------------------------------------------------------

    def _on_schedule(self, sched: RankSchedule) -> None:
        self._latest = sched

    @property
    def schedule(self) -> RankSchedule:
        """The newest schedule received (takes effect at the next :meth:`on_step_begin`)."""
        return self._latest

    @property
    def iteration(self) -> int:
        """Iterations begun so far."""
        return self._iteration

    def status(self) -> ClientStatus:
        """Links, schedule version and counters."""
        st = self._io.status()
        st.order_mismatches = self._mismatches
        return st

    def measurements(self) -> list[ReceivedMeasurement]:
        """Measurements the agent returned, oldest first (the last ``keep_measurements``)."""
        return self._io.snapshot_received()

    def iterations(self) -> list[ReportedIteration]:
        """Iterations this rank reported (time from its clock, energy summed from measurements)."""
        return self._io.snapshot_reported()
