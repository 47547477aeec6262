"""The client's background I/O: every network call of a rank runs here, on one asyncio thread.

The training thread only appends tuples to a :class:`queue.SimpleQueue` (a C-level put that never
blocks) and reads one attribute (the current schedule). A small pump thread blocks on the queue and
hands batches of events to the event loop thread, which owns three links:

- agent: the ``OpenSession`` bidi stream (lease, Begin/End out, Measurement in);
- optimizer: RegisterJob (rank 0) / RegisterRank, the ``WatchSchedule`` stream, ReportIteration;
- profiler: RegisterJob (rank 0), the ``ReportMeasurements`` bidi stream with per-batch acks
  (unacknowledged batches are re-sent with the same id after a reconnect), ReportIterations.

Each link reconnects by itself with capped exponential backoff. A link that is down never delays
the others or the training thread (DESIGN §3, failure rule): the agent being down means the device
stays at its default clocks; the optimizer being down means the last schedule stays in force.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Optional

import grpc
import grpc.aio

from perseus._warn import RateLimitedWarner
from perseus.agent.v1 import agent_pb2, agent_pb2_grpc
from perseus.common.v1 import common_pb2
from perseus.optimizer.v1 import optimizer_pb2, optimizer_pb2_grpc
from perseus.profiler.v1 import profiler_pb2, profiler_pb2_grpc
from perseus.schedule import KIND_TO_PROTO, PROTO_TO_KIND, Kind, RankSchedule

# Event tags pushed by the hooks (plain tuples: the cheapest thing to build and enqueue).
EV_BEGIN = 1  # (EV_BEGIN, seq, iteration, kind, microbatch, frequency_mhz, t_ns)
EV_END = 2  # (EV_END, seq, t_ns)
EV_STEP_BEGIN = 3  # (EV_STEP_BEGIN, iteration, t_ns)
EV_STEP_END = 4  # (EV_STEP_END, iteration, t_ns, schedule_version)
EV_FLUSH = 5  # (EV_FLUSH, threading.Event, deadline_monotonic, result list)
EV_STOP = 6  # (EV_STOP,)

_MAX_AGENT_BACKLOG = 4096

_GRPC_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


@dataclass(frozen=True)
class ReceivedMeasurement:
    """One Measurement the agent returned, with the client's context."""

    seq: int
    iteration: int
    instruction: Kind
    microbatch: int
    frequency_requested_mhz: int
    frequency_applied_mhz: int
    time_s: float
    energy_j: float


@dataclass(frozen=True)
class ReportedIteration:
    """One iteration as this rank reported it."""

    iteration: int
    time_s: float
    energy_j: float
    schedule_version: int
    measured_instructions: int
    busy_s: float
    """Sum of the measured instructions' times, s (the rest of ``time_s`` the GPU waited)."""


@dataclass
class ClientConfig:
    """Everything the I/O thread needs (filled by PipelineFrequencyOptimizer)."""

    job_id: str
    rank: common_pb2.RankIdentity
    device_index: int
    dp_degree: int
    pp_degree: int
    tp_degree: int
    world_size: int
    num_microbatches: int
    schedule_kind: "common_pb2.ScheduleKind.ValueType"
    optimizer_url: Optional[str]
    agent_url: str
    profiler_url: Optional[str]
    node: str
    gpu_model: str
    supported_frequencies_mhz: list[int]
    blocking_power_w: float
    unit_time_s: float
    profiling: optimizer_pb2.ProfilingOptions
    lease_ttl_s: float
    retry_max_s: float
    batch_interval_s: float
    batch_max: int
    iteration_report_timeout_s: float
    keep_measurements: int
    logger: logging.Logger
    warner: RateLimitedWarner


@dataclass
class _Pending:
    iteration: int
    kind: Kind
    microbatch: int
    frequency_mhz: int
    t_begin_ns: int
    session: int  # agent session number the Begin went out on (0 = not sent)


@dataclass
class _Iter:
    iteration: int
    t_begin_ns: int = 0
    t_end_ns: int = 0
    version: int = 0
    outstanding: int = 0
    measured: int = 0
    energy_j: float = 0.0
    busy_s: float = 0.0
    ended: bool = False
    deadline: float = 0.0


@dataclass
class ClientStatus:
    """A snapshot of the client's links and counters (for logs, tests and dashboards)."""

    agent_connected: bool
    optimizer_connected: bool
    profiler_connected: bool
    schedule_version: int
    phase: str
    measurements_received: int
    measurements_acked: int
    iterations_reported: int
    begins_unsent: int
    agent_sessions: int
    optimizer_registrations: int
    warnings_emitted: int
    lease_id: str = ""
    supported_frequencies_mhz: list[int] = field(default_factory=list)


def _normalize_url(url: str) -> str:
    for prefix in ("grpc://", "http://", "dns:///"):
        if url.startswith(prefix):
            return url[len(prefix) :].rstrip("/")
    return url


def _code(err: BaseException) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED):
            return err.code().name
        return f"{err.code().name}: {err.details()}"
    return f"{type(err).__name__}: {err}"


async def _wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """``event.wait()`` with a timeout. Not ``asyncio.wait_for``: on Python < 3.12 it can swallow a
    cancellation that races with the event being set, which would keep a link alive after close()."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout_s)
    finally:
        if not waiter.done():
            waiter.cancel()
    return bool(done)


_SHARED_LOOP: Optional[asyncio.AbstractEventLoop] = None
_SHARED_LOOP_LOCK = threading.Lock()
_SHARED_LOOP_PID = 0


def shared_loop() -> asyncio.AbstractEventLoop:
    """The process's one Perseus I/O event loop, on a daemon thread ("perseus-io").

    Every client of the process runs its links here. grpc.aio binds its completion-queue poller to
    the first loop that uses it, so one long-lived loop per process is also what grpc expects; a
    forked child gets its own.
    """
    global _SHARED_LOOP, _SHARED_LOOP_PID
    with _SHARED_LOOP_LOCK:
        if _SHARED_LOOP is None or _SHARED_LOOP_PID != os.getpid():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name="perseus-io", daemon=True).start()
            ready.wait(10)
            _SHARED_LOOP, _SHARED_LOOP_PID = loop, os.getpid()
        return _SHARED_LOOP


class IoCore:
    """Runs the three links on a private event loop. Created and driven by PipelineFrequencyOptimizer."""

    def __init__(self, cfg: ClientConfig, events: "queue.SimpleQueue[tuple[Any, ...]]", publish: Callable[[RankSchedule], None]) -> None:
        self.cfg = cfg
        self._events = events
        self._publish = publish
        self._loop = shared_loop()
        self._stopping = False
        self._stopped = threading.Event()
        # agent
        self._agent_up = False
        self._agent_session = 0
        # asyncio primitives bind to a loop on first use (Python >= 3.10), so creating them here is safe
        # and lets close() signal a client whose task has not started yet.
        self._agent_out: Optional[asyncio.Queue[agent_pb2.SessionRequest | None]] = asyncio.Queue()
        self._stop_event = asyncio.Event()
        self._lease_id = ""
        self._pending: dict[int, _Pending] = {}
        self._iters: dict[int, _Iter] = {}
        self.received: Deque[ReceivedMeasurement] = collections.deque(maxlen=cfg.keep_measurements)
        self.reported: Deque[ReportedIteration] = collections.deque(maxlen=100_000)
        self._recv_lock = threading.Lock()
        self._measurements_received = 0
        self._begins_unsent = 0
        # profiler
        self._profiler_up = False
        self._meas_buffer: list[profiler_pb2.InstructionMeasurement] = []
        self._unacked: "collections.OrderedDict[str, profiler_pb2.MeasurementBatch]" = collections.OrderedDict()
        self._batch_ids = itertools.count(1)
        self._batch_prefix = f"{cfg.job_id}-r{cfg.rank.rank}-{os.getpid()}-{int(time.time() * 1000) % 10**10}"
        self._iter_records: list[profiler_pb2.IterationRecord] = []
        self._measurements_acked = 0
        self._profiler_wakeup: Optional[asyncio.Event] = asyncio.Event()
        # optimizer
        self._optimizer_up = False
        self._optimizer_registrations = 0
        self._iteration_reports: Deque[optimizer_pb2.ReportIterationRequest] = collections.deque(maxlen=10_000)
        self._report_wakeup: Optional[asyncio.Event] = asyncio.Event()
        self._iterations_reported = 0
        self._schedule = RankSchedule()
        self._flushes: list[tuple[threading.Event, float, list[bool]]] = []
        self._supported: list[int] = list(cfg.supported_frequencies_mhz)
        self._device_name = ""
        self._supported_event: Optional[asyncio.Event] = asyncio.Event()

    # ---- thread entry points -------------------------------------------------------------------

    def start_on_shared_loop(self) -> None:
        """Schedules this client's links on the process-wide I/O loop."""
        fut = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        fut.add_done_callback(lambda _f: self._stopped.set())

    async def _run(self) -> None:
        try:
            await self._main()
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - the I/O side must never take the trainer down
            self.cfg.logger.exception("perseus: I/O task failed; training continues without Perseus")
        finally:
            for ev, _, _ in self._flushes:
                ev.set()
            self._flushes = []

    def run_pump(self) -> None:
        """Body of the pump thread: moves hook events onto the loop in batches."""
        get = self._events.get
        while True:
            ev = get()
            batch = [ev]
            try:
                while len(batch) < 4096:
                    batch.append(self._events.get_nowait())
            except queue.Empty:
                pass
            try:
                self._loop.call_soon_threadsafe(self._handle_events, batch)
            except RuntimeError:  # loop closed: nothing left to deliver to
                return
            if any(e[0] == EV_STOP for e in batch):
                return

    def wait_stopped(self, timeout_s: float) -> bool:
        return self._stopped.wait(timeout_s)

    def status(self) -> ClientStatus:
        return ClientStatus(
            agent_connected=self._agent_up,
            optimizer_connected=self._optimizer_up,
            profiler_connected=self._profiler_up,
            schedule_version=self._schedule.version,
            phase=self._schedule.phase,
            measurements_received=self._measurements_received,
            measurements_acked=self._measurements_acked,
            iterations_reported=self._iterations_reported,
            begins_unsent=self._begins_unsent,
            agent_sessions=self._agent_session,
            optimizer_registrations=self._optimizer_registrations,
            warnings_emitted=self.cfg.warner.emitted,
            lease_id=self._lease_id,
            supported_frequencies_mhz=list(self._supported),
        )

    def snapshot_received(self) -> list[ReceivedMeasurement]:
        with self._recv_lock:
            return list(self.received)

    def snapshot_reported(self) -> list[ReportedIteration]:
        with self._recv_lock:
            return list(self.reported)

    # ---- main ----------------------------------------------------------------------------------

    async def _main(self) -> None:
        if self._supported and self._supported_event is not None:
            self._supported_event.set()
        tasks = [asyncio.ensure_future(self._agent_link()), asyncio.ensure_future(self._ticker())]
        if self.cfg.optimizer_url:
            tasks += [asyncio.ensure_future(self._optimizer_link()), asyncio.ensure_future(self._optimizer_reporter())]
        else:
            self._iteration_reports = collections.deque(maxlen=0)
        if self.cfg.profiler_url:
            tasks.append(asyncio.ensure_future(self._profiler_link()))
        await self._stop_event.wait()
        # Graceful part of close(): give in-flight measurements and batches a bounded chance.
        deadline = time.monotonic() + self._close_grace_s
        while time.monotonic() < deadline and not self._drained():
            self._finish_iterations(force=False)
            await asyncio.sleep(0.02)
        self._finish_iterations(force=True)
        self._cut_batch()
        if self._profiler_wakeup is not None:
            self._profiler_wakeup.set()
        if self._report_wakeup is not None:
            self._report_wakeup.set()
        while time.monotonic() < deadline and (
            ((self._unacked or self._iter_records) and self._profiler_up) or (self._iteration_reports and self._optimizer_up)
        ):
            await asyncio.sleep(0.02)
        self._stopping = True
        if self._agent_out is not None:
            self._agent_out.put_nowait(None)
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks, timeout=1.0)

    _close_grace_s = 2.0

    def request_stop(self, grace_s: float) -> None:
        self._close_grace_s = grace_s

        def stop() -> None:
            self._stop_event.set()

        try:
            self._loop.call_soon_threadsafe(stop)
        except RuntimeError:
            pass

    def _drained(self) -> bool:
        sent_pending = any(p.session for p in self._pending.values()) if self._agent_up else False
        return not sent_pending and not any(it.ended for it in self._iters.values())

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            self._finish_iterations(force=False)
            if self._iteration_reports and self._optimizer_up and self._report_wakeup is not None:
                self._report_wakeup.set()
            self._check_flushes()

    # ---- hook events ---------------------------------------------------------------------------

    def _handle_events(self, batch: list[tuple[Any, ...]]) -> None:
        out = self._agent_out
        for ev in batch:
            tag = ev[0]
            if tag == EV_BEGIN:
                _, seq, iteration, kind, mb, freq, t_ns = ev
                it = self._iters.get(iteration)
                if it is None:
                    it = self._iters[iteration] = _Iter(iteration, t_begin_ns=t_ns)
                # A backlog means the agent (or this thread) cannot keep up: measure less rather
                # than buffer without bound; the instruction itself is never held up.
                session = self._agent_session if self._agent_up and out is not None and out.qsize() < _MAX_AGENT_BACKLOG else 0
                self._pending[seq] = _Pending(iteration, kind, mb, freq, t_ns, session)
                if session and out is not None:
                    it.outstanding += 1
                    out.put_nowait(
                        agent_pb2.SessionRequest(
                            begin=agent_pb2.Begin(seq=seq, instruction=KIND_TO_PROTO[kind], microbatch=mb, frequency_mhz=freq, t_ns=t_ns)
                        )
                    )
                else:
                    self._begins_unsent += 1
            elif tag == EV_END:
                _, seq, t_ns = ev
                p = self._pending.get(seq)
                if p is None:
                    continue
                if p.session and p.session == self._agent_session and self._agent_up and out is not None:
                    out.put_nowait(agent_pb2.SessionRequest(end=agent_pb2.End(seq=seq, t_ns=t_ns)))
                else:
                    self._drop_pending(seq)
            elif tag == EV_STEP_BEGIN:
                _, iteration, t_ns = ev
                it = self._iters.get(iteration)
                if it is None:
                    self._iters[iteration] = _Iter(iteration, t_begin_ns=t_ns)
                else:
                    it.t_begin_ns = t_ns
            elif tag == EV_STEP_END:
                _, iteration, t_ns, version = ev
                it = self._iters.get(iteration)
                if it is None:
                    it = self._iters[iteration] = _Iter(iteration, t_begin_ns=t_ns)
                it.t_end_ns = t_ns
                it.version = version
                it.ended = True
                it.deadline = time.monotonic() + self.cfg.iteration_report_timeout_s
                self._finish_iterations(force=False)
            elif tag == EV_FLUSH:
                self._flushes.append((ev[1], ev[2], ev[3]))
            elif tag == EV_STOP:
                pass
        self._check_flushes()

    def _drop_pending(self, seq: int) -> None:
        p = self._pending.pop(seq, None)
        if p is None:
            return
        if p.session:
            it = self._iters.get(p.iteration)
            if it is not None:
                it.outstanding -= 1

    def _finish_iterations(self, force: bool) -> None:
        now = time.monotonic()
        done: list[int] = []
        for iteration, it in self._iters.items():
            if not it.ended:
                continue
            if it.outstanding > 0 and now < it.deadline and not force:
                continue
            done.append(iteration)
            time_s = max((it.t_end_ns - it.t_begin_ns) / 1e9, 1e-9)
            rep = ReportedIteration(iteration, time_s, it.energy_j, it.version, it.measured, it.busy_s)
            with self._recv_lock:
                self.reported.append(rep)
            self._iteration_reports.append(
                optimizer_pb2.ReportIterationRequest(
                    job_id=self.cfg.job_id, rank=self.cfg.rank, iteration=iteration, time_s=time_s, energy_j=it.energy_j, schedule_version=it.version
                )
            )
            if self.cfg.profiler_url:
                self._iter_records.append(profiler_pb2.IterationRecord(rank=self.cfg.rank, iteration=iteration, time_s=time_s, energy_j=it.energy_j))
            if len(self._iter_records) > 10_000:
                del self._iter_records[: len(self._iter_records) - 10_000]
        for iteration in done:
            del self._iters[iteration]
            # Begin/End pairs of a finished iteration that were never answered are dropped.
            for seq in [s for s, p in self._pending.items() if p.iteration == iteration]:
                self._pending.pop(seq, None)
        if done and self._report_wakeup is not None:
            self._report_wakeup.set()

    def _check_flushes(self) -> None:
        if not self._flushes:
            return
        now = time.monotonic()
        idle = self._drained() and not self._unacked and not self._meas_buffer and not self._iteration_reports and not self._iter_records
        if not idle:
            # Let buffered work go out now rather than at the next interval. Only wake a task that
            # has work: Event.wait() on a set event does not yield, so a task woken with nothing to
            # do would spin the loop.
            if self._meas_buffer:
                self._cut_batch()
            if self._iteration_reports and self._optimizer_up and self._report_wakeup is not None:
                self._report_wakeup.set()
        keep: list[tuple[threading.Event, float, list[bool]]] = []
        for ev, deadline, result in self._flushes:
            if idle or now >= deadline:
                result.append(idle)
                ev.set()
            else:
                keep.append((ev, deadline, result))
        self._flushes = keep

    # ---- agent ---------------------------------------------------------------------------------

    async def _agent_link(self) -> None:
        cfg = self.cfg
        backoff = 0.1
        while not self._stopping:
            channel = grpc.aio.insecure_channel(_normalize_url(cfg.agent_url), options=_GRPC_OPTIONS)
            call: Any = None
            try:
                stub = agent_pb2_grpc.GpuAgentStub(channel)
                call = stub.OpenSession()
                await call.write(
                    agent_pb2.SessionRequest(
                        open=agent_pb2.OpenSession(job_id=cfg.job_id, rank=cfg.rank, device_index=cfg.device_index, lease_ttl_s=cfg.lease_ttl_s)
                    )
                )
                first: Any = await call.read()
                if first is grpc.aio.EOF:
                    raise ConnectionError("agent closed the session before granting a lease")
                if first.WhichOneof("event") == "error":
                    raise ConnectionError(f"agent refused the session: {first.error.error.message}")
                if first.WhichOneof("event") != "opened":
                    raise ConnectionError("agent answered the open with something other than a lease")
                self._lease_id = first.opened.lease_id
                clocks = list(first.opened.device.supported_sm_clocks_mhz)
                self._device_name = first.opened.device.name
                if clocks and not self._supported:
                    self._supported = clocks
                if self._supported and self._supported_event is not None:
                    self._supported_event.set()
                # Drop anything queued for a previous session; seqs continue increasing.
                assert self._agent_out is not None
                while not self._agent_out.empty():
                    self._agent_out.get_nowait()
                self._agent_session += 1
                self._agent_up = True
                backoff = 0.1
                cfg.warner.recovered("agent", "perseus: GPU agent at %s reachable again; clock control resumed", cfg.agent_url)
                writer = asyncio.ensure_future(self._agent_writer(call))
                try:
                    while True:
                        msg: Any = await call.read()
                        if msg is grpc.aio.EOF:
                            raise ConnectionError("agent ended the session")
                        self._on_agent_message(msg)
                finally:
                    writer.cancel()
                    await asyncio.gather(writer, return_exceptions=True)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - any failure: degrade, warn once, retry
                if not self._stopping:
                    cfg.warner.warn(
                        "agent",
                        "perseus: GPU agent at %s unavailable (%s); training continues at the device's default clocks, retrying",
                        cfg.agent_url,
                        _code(err),
                    )
            finally:
                self._agent_up = False
                for seq in [s for s, p in self._pending.items() if p.session]:
                    self._drop_pending(seq)
                if call is not None:
                    call.cancel()
                await channel.close(grace=None)
            if self._stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, cfg.retry_max_s)

    async def _agent_writer(self, call: Any) -> None:
        assert self._agent_out is not None
        out = self._agent_out
        while True:
            msg = await out.get()
            if msg is None:
                await call.done_writing()
                return
            await call.write(msg)

    def _on_agent_message(self, msg: agent_pb2.SessionResponse) -> None:
        which = msg.WhichOneof("event")
        if which == "measurement":
            m = msg.measurement
            p = self._pending.pop(m.seq, None)
            if p is None:
                return
            it = self._iters.get(p.iteration)
            if it is not None:
                it.outstanding -= 1
                it.measured += 1
                it.energy_j += m.energy_j
                it.busy_s += m.time_s
            rec = ReceivedMeasurement(
                seq=m.seq,
                iteration=p.iteration,
                instruction=PROTO_TO_KIND.get(m.instruction, p.kind),
                microbatch=m.microbatch,
                frequency_requested_mhz=p.frequency_mhz,
                frequency_applied_mhz=m.frequency_applied_mhz,
                time_s=m.time_s,
                energy_j=m.energy_j,
            )
            with self._recv_lock:
                self.received.append(rec)
            self._measurements_received += 1
            if m.time_s > 0 and m.energy_j >= 0 and self.cfg.profiler_url:
                # Default clocks are reported as 0; the profiler wants the real clock (the highest).
                freq = m.frequency_applied_mhz or (max(self._supported) if self._supported else 0)
                if freq:
                    self._meas_buffer.append(
                        profiler_pb2.InstructionMeasurement(
                            rank=self.cfg.rank,
                            instruction=m.instruction or KIND_TO_PROTO[p.kind],
                            microbatch=m.microbatch,
                            frequency_mhz=freq,
                            time_s=m.time_s,
                            energy_j=m.energy_j,
                            iteration=p.iteration,
                        )
                    )
                    if len(self._meas_buffer) >= self.cfg.batch_max:
                        self._cut_batch()
            if it is not None and it.ended and it.outstanding <= 0:
                self._finish_iterations(force=False)
            self._check_flushes()
        elif which == "error":
            e = msg.error
            self.cfg.warner.warn("agent-event", "perseus: GPU agent rejected event seq=%d: %s", e.seq, e.error.message)
            self._drop_pending(e.seq)
            self._check_flushes()

    # ---- profiler ------------------------------------------------------------------------------

    def _cut_batch(self) -> None:
        if not self._meas_buffer:
            return
        batch_id = f"{self._batch_prefix}-{next(self._batch_ids)}"
        self._unacked[batch_id] = profiler_pb2.MeasurementBatch(batch_id=batch_id, job_id=self.cfg.job_id, measurements=self._meas_buffer)
        self._meas_buffer = []
        # Bounded memory during a long profiler outage: the oldest batches go first.
        while len(self._unacked) > 200:
            self._unacked.popitem(last=False)
        if self._profiler_wakeup is not None:
            self._profiler_wakeup.set()

    async def _wait_supported(self, timeout_s: float) -> None:
        if self._supported_event is None or self._supported_event.is_set():
            return
        await _wait_event(self._supported_event, timeout_s)

    async def _profiler_link(self) -> None:
        cfg = self.cfg
        assert cfg.profiler_url
        backoff = 0.1
        registered = False
        while not self._stopping:
            channel = grpc.aio.insecure_channel(_normalize_url(cfg.profiler_url), options=_GRPC_OPTIONS)
            call = None
            try:
                stub = profiler_pb2_grpc.ProfilerStub(channel)
                if cfg.rank.rank == 0 and not registered:
                    await self._wait_supported(5.0)
                    await self._register_profiler_job(stub)
                    registered = True
                call = stub.ReportMeasurements()
                self._profiler_up = True
                backoff = 0.1
                cfg.warner.recovered("profiler", "perseus: profiler at %s reachable again", cfg.profiler_url)
                in_flight: set[str] = set()
                reader = asyncio.ensure_future(self._profiler_reader(call, in_flight))
                try:
                    last_cut = time.monotonic()
                    while True:
                        assert self._profiler_wakeup is not None
                        await _wait_event(self._profiler_wakeup, cfg.batch_interval_s)
                        self._profiler_wakeup.clear()
                        if self._stopping:
                            return
                        if reader.done():
                            reader.result()
                            raise ConnectionError("profiler ended the measurement stream")
                        if time.monotonic() - last_cut >= cfg.batch_interval_s or len(self._meas_buffer) >= cfg.batch_max:
                            self._cut_batch()
                            last_cut = time.monotonic()
                        for batch_id, batch in list(self._unacked.items()):
                            if batch_id not in in_flight:
                                in_flight.add(batch_id)
                                await call.write(batch)
                        if self._iter_records:
                            records, self._iter_records = self._iter_records, []
                            try:
                                await stub.ReportIterations(profiler_pb2.ReportIterationsRequest(job_id=cfg.job_id, iterations=records), timeout=10)
                            except grpc.aio.AioRpcError as err:
                                if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                                    self._iter_records = records + self._iter_records
                                    raise
                                cfg.warner.warn("profiler-iterations", "perseus: profiler rejected iteration records (%s): %s", err.code().name, err.details())
                finally:
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001
                if not self._stopping:
                    cfg.warner.warn(
                        "profiler",
                        "perseus: profiler at %s unavailable (%s); measurements are buffered and re-sent, training continues",
                        cfg.profiler_url,
                        _code(err),
                    )
            finally:
                self._profiler_up = False
                if call is not None:
                    call.cancel()
                await channel.close(grace=None)
            if self._stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, cfg.retry_max_s)

    async def _register_profiler_job(self, stub: Any) -> None:
        cfg = self.cfg
        try:
            await stub.RegisterJob(
                profiler_pb2.RegisterJobRequest(
                    job_id=cfg.job_id,
                    pipeline=common_pb2.PipelineSpec(schedule=cfg.schedule_kind, num_stages=cfg.pp_degree, num_microbatches=cfg.num_microbatches),
                    dp_degree=cfg.dp_degree,
                    tp_degree=cfg.tp_degree,
                    supported_frequencies_mhz=self._supported,
                ),
                timeout=10,
            )
        except grpc.aio.AioRpcError as err:
            # The optimizer registers the job with the profiler too (with every rank's clocks); an
            # existing registration is what the measurements need, whoever made it.
            if err.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS):
                raise

    async def _profiler_reader(self, call: Any, in_flight: set[str]) -> None:
        while True:
            ack = await call.read()
            if ack is grpc.aio.EOF:
                raise ConnectionError("profiler ended the measurement stream")
            in_flight.discard(ack.batch_id)
            batch = self._unacked.get(ack.batch_id)
            if ack.HasField("error") and ack.error.code != 0:
                # NOT_FOUND / FAILED_PRECONDITION: the job is not registered there yet; retry later.
                if ack.error.code in (5, 9, 14) and batch is not None:
                    self.cfg.warner.warn("profiler-batch", "perseus: profiler deferred a batch (%s); retrying", ack.error.message)
                    await asyncio.sleep(min(self.cfg.retry_max_s, 1.0))
                    continue
                self.cfg.warner.warn("profiler-batch", "perseus: profiler rejected a measurement batch: %s", ack.error.message)
            elif batch is not None:
                self._measurements_acked += len(batch.measurements)
            self._unacked.pop(ack.batch_id, None)
            self._check_flushes()

    # ---- optimizer -----------------------------------------------------------------------------

    async def _optimizer_link(self) -> None:
        cfg = self.cfg
        assert cfg.optimizer_url
        backoff = 0.1
        job_registered = False
        while not self._stopping:
            channel = grpc.aio.insecure_channel(_normalize_url(cfg.optimizer_url), options=_GRPC_OPTIONS)
            try:
                stub = optimizer_pb2_grpc.OptimizerStub(channel)
                # Clocks (and the GPU model) come from the agent unless given: wait for them.
                await self._wait_supported(3600.0)
                if cfg.rank.rank == 0 and not job_registered:
                    await stub.RegisterJob(
                        optimizer_pb2.RegisterJobRequest(
                            job_id=cfg.job_id,
                            spec=optimizer_pb2.JobSpec(
                                pipeline=common_pb2.PipelineSpec(schedule=cfg.schedule_kind, num_stages=cfg.pp_degree, num_microbatches=cfg.num_microbatches),
                                dp_degree=cfg.dp_degree,
                                tp_degree=cfg.tp_degree,
                                world_size=cfg.world_size,
                                gpu_model=cfg.gpu_model or self._device_name or "unknown",
                                unit_time_s=cfg.unit_time_s,
                                blocking_power_w=cfg.blocking_power_w,
                                profiling=cfg.profiling,
                            ),
                        ),
                        timeout=10,
                    )
                    job_registered = True
                await stub.RegisterRank(
                    optimizer_pb2.RegisterRankRequest(
                        job_id=cfg.job_id, rank=cfg.rank, node=cfg.node, device_index=cfg.device_index, supported_frequencies_mhz=self._supported
                    ),
                    timeout=10,
                )
                self._optimizer_registrations += 1
                stream = stub.WatchSchedule(optimizer_pb2.WatchScheduleRequest(job_id=cfg.job_id, rank=cfg.rank.rank, known_version=self._schedule.version))
                self._optimizer_up = True
                backoff = 0.1
                cfg.warner.recovered("optimizer", "perseus: optimizer at %s reachable again; schedules resume", cfg.optimizer_url)
                if self._report_wakeup is not None:
                    self._report_wakeup.set()
                async for sched in stream:
                    self._on_schedule(sched)
                raise ConnectionError("optimizer ended the schedule stream")
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001
                if not self._stopping:
                    if isinstance(err, grpc.aio.AioRpcError) and err.code() == grpc.StatusCode.NOT_FOUND and cfg.rank.rank != 0:
                        # Rank 0 has not registered the job yet: expected at start-up, not worth a warning.
                        pass
                    else:
                        cfg.warner.warn(
                            "optimizer",
                            "perseus: optimizer at %s unavailable (%s); training continues with schedule v%d, retrying",
                            cfg.optimizer_url,
                            _code(err),
                            self._schedule.version,
                        )
            finally:
                self._optimizer_up = False
                await channel.close(grace=None)
            if self._stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, cfg.retry_max_s)

    def _on_schedule(self, sched: optimizer_pb2.Schedule) -> None:
        if sched.version < self._schedule.version:
            return
        clocks: dict[tuple[Kind, int], int] = {}
        for ins in sched.instructions:
            kind = PROTO_TO_KIND.get(ins.instruction)
            if kind is not None:
                clocks[(kind, ins.microbatch)] = ins.frequency_mhz
        new = RankSchedule(
            version=sched.version,
            phase=optimizer_pb2.Phase.Name(sched.phase) if sched.phase in optimizer_pb2.Phase.values() else str(sched.phase),
            reason=sched.reason,
            clocks=clocks,
            expected_iteration_time_s=sched.expected_iteration_time_s,
            expected_iteration_energy_j=sched.expected_iteration_energy_j,
        )
        self._schedule = new
        self._publish(new)

    async def _optimizer_reporter(self) -> None:
        cfg = self.cfg
        assert cfg.optimizer_url
        channel = grpc.aio.insecure_channel(_normalize_url(cfg.optimizer_url), options=_GRPC_OPTIONS)
        stub = optimizer_pb2_grpc.OptimizerStub(channel)
        try:
            while True:
                assert self._report_wakeup is not None
                await self._report_wakeup.wait()
                self._report_wakeup.clear()
                while self._iteration_reports and self._optimizer_up:
                    req = self._iteration_reports[0]
                    try:
                        await stub.ReportIteration(req, timeout=10)
                        self._iterations_reported += 1
                    except grpc.aio.AioRpcError as err:
                        if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                            await asyncio.sleep(0.2)
                            break  # the link task reconnects; keep the report for then
                        cfg.warner.warn("optimizer-report", "perseus: optimizer rejected an iteration report (%s): %s", err.code().name, err.details())
                    if self._iteration_reports and self._iteration_reports[0] is req:
                        self._iteration_reports.popleft()
                # Reports left (link down or a transient error) wait for the link's or the ticker's
                # next wake-up; the deque is bounded, oldest dropped first.
                await asyncio.sleep(0)
        finally:
            await channel.close(grace=None)
