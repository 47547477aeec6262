"""The client's background I/O: every network call of a rank runs here, on one asyncio thread.

The training thread only appends tuples to a :class:`queue.SimpleQueue` (a C-level put that never
blocks) and reads one attribute (the current schedule). A small pump thread blocks on the queue and
hands batches of events to the event loop thread, where :class:`IoCore` keeps the per-iteration
bookkeeping and drives three links, each in its own module:

- agent (:mod:`perseus._agent_link`): the ``OpenSession`` bidi stream;
- optimizer (:mod:`perseus._optimizer_link`): registration, ``WatchSchedule``, ReportIteration;
- profiler (:mod:`perseus._profiler_link`): the ``ReportMeasurements`` stream, ReportIterations.

Each link reconnects by itself (:mod:`perseus._link`). A link that is down never delays the others
or the training thread (docs/architecture.md, failure rules): the agent being down means the device
stays at its default clocks; the optimizer being down means the last schedule stays in force.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from perseus._agent_link import AgentLink
from perseus._config import ClientConfig
from perseus._grpc import shared_loop, wait_event
from perseus._link import Link
from perseus._optimizer_link import OptimizerLink
from perseus._profiler_link import ProfilerLink
from perseus._records import ClientStatus, LinkFailure, ReceivedMeasurement, ReportedIteration, StragglerAck
from perseus.agent.v1 import agent_pb2
from perseus.optimizer.v1 import optimizer_pb2
from perseus.profiler.v1 import profiler_pb2
from perseus.schedule import KIND_TO_PROTO, PROTO_TO_KIND, Kind, RankSchedule

# Event tags pushed by the hooks (plain tuples: the cheapest thing to build and enqueue).
EV_BEGIN = 1  # (EV_BEGIN, seq, iteration, kind, microbatch, frequency_mhz, t_ns, chunk)
EV_END = 2  # (EV_END, seq, t_ns)
EV_STEP_BEGIN = 3  # (EV_STEP_BEGIN, iteration, t_ns)
EV_STEP_END = 4  # (EV_STEP_END, iteration, t_ns, schedule_version)
EV_FLUSH = 5  # (EV_FLUSH, threading.Event, deadline_monotonic, result list)
EV_STOP = 6  # (EV_STOP,)

_MAX_AGENT_BACKLOG = 4096
_CLOSE_STALL_S = 0.4
"""close() stops waiting for deliveries when no service has answered anything for this long."""
_CLOSE_CANCEL_S = 0.3
"""After the graceful part of close(), how long cancelled link tasks get to finish."""


@dataclass
class _Pending:
    iteration: int
    kind: Kind
    microbatch: int
    frequency_mhz: int
    t_begin_ns: int
    chunk: int
    session: int  # agent session number the Begin went out on (0 = not sent)


@dataclass
class _Iter:
    iteration: int
    t_begin_ns: int = 0
    t_end_ns: int = 0
    t_last_instruction_end_ns: int = 0
    version: int = 0
    outstanding: int = 0
    measured: int = 0
    energy_j: float = 0.0
    busy_s: float = 0.0
    ended: bool = False
    deadline: float = 0.0


class IoCore:
    """Runs the links on the process's I/O loop. Created and driven by PipelineFrequencyOptimizer."""

    def __init__(self, cfg: ClientConfig, events: queue.SimpleQueue[tuple[Any, ...]], publish: Callable[[RankSchedule], None]) -> None:
        self.cfg = cfg
        self._events = events
        self._publish = publish
        self._loop = shared_loop()
        self._stopped = threading.Event()
        # asyncio primitives bind to a loop on first use (Python >= 3.10), so creating them here is
        # safe and lets close() signal a client whose task has not started yet.
        self._stop_requested = asyncio.Event()
        self._links_stop = asyncio.Event()
        self._close_grace_s = 2.0
        self._pending: dict[int, _Pending] = {}
        self._iters: dict[int, _Iter] = {}
        self.received: collections.deque[ReceivedMeasurement] = collections.deque(maxlen=cfg.keep_measurements)
        self.reported: collections.deque[ReportedIteration] = collections.deque(maxlen=100_000)
        self._recv_lock = threading.Lock()
        self._measurements_received = 0
        self._begins_unsent = 0
        self._flushes: list[tuple[threading.Event, float, list[bool]]] = []
        self.supported: list[int] = list(cfg.supported_frequencies_mhz)
        self._supported_event = asyncio.Event()
        self._simulated_warned = False
        self._agent_known = asyncio.Event()
        self.profile_job_id = cfg.job_id if cfg.optimizer_url is None else ""
        """Job id of this generation's profile at the profiler (from the optimizer's registration)."""
        self._profile_job_known = asyncio.Event()
        if self.profile_job_id:
            self._profile_job_known.set()
        self.failures: dict[str, LinkFailure] = {}
        common: dict[str, Any] = {
            "retry_max_s": cfg.retry_max_s,
            "warner": cfg.warner,
            "logger": cfg.logger,
            "stop": self._links_stop,
            "on_failure": self._on_failure,
        }
        self.agent = AgentLink(self, cfg.agent_url, **common)
        self.optimizer = OptimizerLink(self, cfg.optimizer_url, **common) if cfg.optimizer_url else None
        self.profiler = ProfilerLink(self, cfg.profiler_url, **common) if cfg.profiler_url else None

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
        except Exception:  # the I/O side must never take the trainer down
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

    def request_stop(self, grace_s: float) -> None:
        self._close_grace_s = grace_s
        try:
            self._loop.call_soon_threadsafe(self._stop_requested.set)
        except RuntimeError:
            pass

    def call_report_straggler(self, req: optimizer_pb2.ReportStragglerRequest, timeout_s: float) -> StragglerAck:
        """ReportStraggler on the I/O loop, waited for by the calling thread."""
        assert self.optimizer is not None
        fut = asyncio.run_coroutine_threadsafe(self.optimizer.report_straggler(req, timeout_s), self._loop)
        try:
            return fut.result(timeout_s + 1.0)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise ConnectionError(f"optimizer at {self.optimizer.url} did not answer within {timeout_s}s") from None

    def status(self) -> ClientStatus:
        opt = self.optimizer
        sched = opt.schedule if opt is not None else RankSchedule()
        return ClientStatus(
            agent_connected=self.agent.up,
            optimizer_connected=opt is not None and opt.up,
            profiler_connected=self.profiler is not None and self.profiler.up,
            schedule_version=sched.version,
            phase=sched.phase,
            measurements_received=self._measurements_received,
            measurements_acked=self.profiler.acked if self.profiler is not None else 0,
            iterations_reported=opt.reported if opt is not None else 0,
            begins_unsent=self._begins_unsent,
            agent_sessions=self.agent.session,
            optimizer_registrations=opt.registrations if opt is not None else 0,
            warnings_emitted=self.cfg.warner.emitted,
            lease_id=self.agent.lease_id,
            supported_frequencies_mhz=list(self.supported),
            simulated=self.agent.simulated,
            failures=dict(self.failures),
            schedules_rejected=opt.rejected if opt is not None else 0,
        )

    def snapshot_received(self) -> list[ReceivedMeasurement]:
        with self._recv_lock:
            return list(self.received)

    def snapshot_reported(self) -> list[ReportedIteration]:
        with self._recv_lock:
            return list(self.reported)

    # ---- shared with the links -----------------------------------------------------------------

    def publish(self, sched: RankSchedule) -> None:
        self._publish(sched)

    def device_name(self) -> str:
        return self.agent.device_name

    def set_supported(self, clocks: list[int]) -> None:
        if clocks and not self.supported:
            self.supported = clocks
        if self.supported:
            self._supported_event.set()

    def agent_known(self) -> None:
        """The agent answered the session's open (a lease, or a permanent refusal)."""
        self._agent_known.set()

    async def wait_agent_known(self, timeout_s: float) -> None:
        """Waits once: an agent that does not answer in time is not waited for again."""
        if not self._agent_known.is_set():
            await wait_event(self._agent_known, timeout_s)
            self._agent_known.set()

    def set_profile_job_id(self, job_id: str) -> None:
        self.profile_job_id = job_id
        self._profile_job_known.set()
        if self.profiler is not None:
            self.profiler.wakeup.set()

    async def wait_profile_job_id(self) -> str:
        await self._profile_job_known.wait()
        return self.profile_job_id

    async def wait_supported(self, timeout_s: float) -> None:
        if not self._supported_event.is_set():
            await wait_event(self._supported_event, timeout_s)

    def note_simulated(self, device_name: str) -> None:
        if not self._simulated_warned and self.cfg.warn_if_simulated:
            self._simulated_warned = True
            self.cfg.logger.warning(
                "perseus: the device behind %s is a SIMULATED GPU (%s): energies and savings are emulated, not measured",
                self.cfg.agent_url,
                device_name or "unnamed",
            )

    def _on_failure(self, failure: LinkFailure) -> None:
        self.failures[failure.link] = failure
        if failure.link == "agent":
            self._agent_known.set()
        self._check_flushes()

    # ---- main ----------------------------------------------------------------------------------

    def _links(self) -> list[Link]:
        return [link for link in (self.agent, self.optimizer, self.profiler) if link is not None]

    async def _main(self) -> None:
        if self.supported:
            self._supported_event.set()
        tasks = [asyncio.ensure_future(link.run()) for link in self._links()]
        tasks.append(asyncio.ensure_future(self._ticker()))
        if self.optimizer is not None:
            tasks.append(asyncio.ensure_future(self.optimizer.report_loop()))
        await self._stop_requested.wait()
        # Graceful part of close(): a bounded chance for what a connected link can still deliver,
        # given up as soon as nothing arrives for _CLOSE_STALL_S (a hung or partitioned service).
        deadline = time.monotonic() + self._close_grace_s

        def measuring() -> bool:
            self._finish_iterations(force=False)
            return not self._drained()

        progressed = await self._deliver_while(measuring, deadline, time.monotonic())
        self._finish_iterations(force=True)
        if self.profiler is not None:
            self.profiler.cut()
        if self.optimizer is not None:
            self.optimizer.report_wakeup.set()
        await self._deliver_while(self._deliverable, deadline, progressed)
        self._links_stop.set()
        self.agent.out.put_nowait(None)
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks, timeout=_CLOSE_CANCEL_S)

    def _progress(self) -> tuple[int, int, int]:
        """Counters that move while a service answers."""
        prof, opt = self.profiler, self.optimizer
        return (self._measurements_received, prof.acked if prof is not None else 0, opt.reported if opt is not None else 0)

    async def _deliver_while(self, pending: Callable[[], bool], deadline: float, since: float) -> float:
        """Waits while ``pending()``, until ``deadline`` or a stall; returns the last progress time
        (``since`` = the previous one), so consecutive waits share one stall window."""
        last, last_t = self._progress(), since
        while pending():
            now = time.monotonic()
            if now >= deadline:
                break
            progress = self._progress()
            if progress != last:
                last, last_t = progress, now
            elif now - last_t >= _CLOSE_STALL_S:
                break
            await asyncio.sleep(0.02)
        return last_t

    def _deliverable(self) -> bool:
        """Whether a connected link still has something to send."""
        prof, opt = self.profiler, self.optimizer
        return bool((prof is not None and prof.up and prof.pending()) or (opt is not None and opt.up and opt.reports))

    def _drained(self) -> bool:
        sent_pending = any(p.session for p in self._pending.values()) if self.agent.up else False
        return not sent_pending and not any(it.ended for it in self._iters.values())

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            self._finish_iterations(force=False)
            opt = self.optimizer
            if opt is not None and opt.reports and opt.up:
                opt.report_wakeup.set()
            self._check_flushes()

    # ---- hook events ---------------------------------------------------------------------------

    def _handle_events(self, batch: list[tuple[Any, ...]]) -> None:
        agent = self.agent
        out = agent.out
        for ev in batch:
            tag = ev[0]
            if tag == EV_BEGIN:
                _, seq, iteration, kind, mb, freq, t_ns, chunk = ev
                it = self._iters.get(iteration)
                if it is None:
                    it = self._iters[iteration] = _Iter(iteration, t_begin_ns=t_ns)
                # A backlog means the agent (or this thread) cannot keep up: measure less rather
                # than buffer without bound; the instruction itself is never held up.
                session = agent.session if agent.up and out.qsize() < _MAX_AGENT_BACKLOG else 0
                self._pending[seq] = _Pending(iteration, kind, mb, freq, t_ns, chunk, session)
                if session:
                    it.outstanding += 1
                    out.put_nowait(
                        agent_pb2.SessionRequest(begin=agent_pb2.Begin(seq=seq, instruction=KIND_TO_PROTO[kind], microbatch=mb, frequency_mhz=freq, t_ns=t_ns, chunk=chunk))
                    )
                else:
                    self._begins_unsent += 1
            elif tag == EV_END:
                _, seq, t_ns = ev
                p = self._pending.get(seq)
                if p is None:
                    continue
                it = self._iters.get(p.iteration)
                if it is not None:
                    it.t_last_instruction_end_ns = max(it.t_last_instruction_end_ns, t_ns)
                if p.session and p.session == agent.session and agent.up:
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
        self._check_flushes()

    def _drop_pending(self, seq: int) -> None:
        p = self._pending.pop(seq, None)
        if p is None or not p.session:
            return
        it = self._iters.get(p.iteration)
        if it is not None:
            it.outstanding -= 1

    def drop_sent_pending(self) -> None:
        """The agent session ended: Begin/End pairs sent on it will never be measured."""
        for seq in [s for s, p in self._pending.items() if p.session]:
            self._drop_pending(seq)

    def _finish_iterations(self, force: bool) -> None:
        now = time.monotonic()
        done: list[int] = []
        for iteration, it in self._iters.items():
            if not it.ended or (it.outstanding > 0 and now < it.deadline and not force):
                continue
            done.append(iteration)
            time_s = max((it.t_end_ns - it.t_begin_ns) / 1e9, 1e-9)
            compute_s = max((it.t_last_instruction_end_ns - it.t_begin_ns) / 1e9, 0.0) if it.t_last_instruction_end_ns else 0.0
            rep = ReportedIteration(iteration, time_s, it.energy_j, it.version, it.measured, it.busy_s, compute_s)
            with self._recv_lock:
                self.reported.append(rep)
            if self.optimizer is not None and self.optimizer.failure is None:
                self.optimizer.reports.append(self._iteration_request(rep))
            if self.profiler is not None and self.profiler.failure is None:
                self.profiler.add_iteration(profiler_pb2.IterationRecord(rank=self.cfg.rank, iteration=iteration, time_s=time_s, energy_j=it.energy_j))
        for iteration in done:
            del self._iters[iteration]
            # Begin/End pairs of a finished iteration that were never answered are dropped.
            for seq in [s for s, p in self._pending.items() if p.iteration == iteration]:
                self._pending.pop(seq, None)
        if done and self.optimizer is not None:
            self.optimizer.report_wakeup.set()

    def _iteration_request(self, rep: ReportedIteration) -> optimizer_pb2.ReportIterationRequest:
        opt = self.optimizer
        return optimizer_pb2.ReportIterationRequest(
            job_id=self.cfg.job_id,
            rank=self.cfg.rank,
            iteration=rep.iteration,
            time_s=rep.time_s,
            energy_j=rep.energy_j,
            schedule_version=rep.schedule_version,
            compute_time_s=min(rep.compute_time_s, rep.time_s),
            generation=opt.generation if opt is not None else 0,
        )

    def _idle(self) -> bool:
        prof, opt = self.profiler, self.optimizer
        return self._drained() and not (prof is not None and prof.failure is None and prof.pending()) and not (opt is not None and opt.failure is None and opt.reports)

    def check_flushes(self) -> None:
        self._check_flushes()

    def _check_flushes(self) -> None:
        if not self._flushes:
            return
        now = time.monotonic()
        idle = self._idle()
        if not idle:
            # Let buffered work go out now rather than at the next interval. Only wake a task that
            # has work: Event.wait() on a set event does not yield, so a task woken with nothing to
            # do would spin the loop.
            if self.profiler is not None and self.profiler.buffer:
                self.profiler.cut()
            if self.optimizer is not None and self.optimizer.reports and self.optimizer.up:
                self.optimizer.report_wakeup.set()
        keep: list[tuple[threading.Event, float, list[bool]]] = []
        for ev, deadline, result in self._flushes:
            if idle or now >= deadline:
                result.append(idle)
                ev.set()
            else:
                keep.append((ev, deadline, result))
        self._flushes = keep

    # ---- agent messages ------------------------------------------------------------------------

    def on_agent_message(self, msg: agent_pb2.SessionResponse) -> None:
        which = msg.WhichOneof("event")
        if which == "measurement":
            self._on_measurement(msg.measurement)
        elif which == "error":
            e = msg.error
            self.cfg.warner.warn("agent-event", "perseus: GPU agent rejected event seq=%d: %s", e.seq, e.error.message)
            self._drop_pending(e.seq)
        self._check_flushes()

    def _on_measurement(self, m: agent_pb2.Measurement) -> None:
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
            chunk=p.chunk,
        )
        with self._recv_lock:
            self.received.append(rec)
        self._measurements_received += 1
        prof = self.profiler
        if m.time_s > 0 and m.energy_j >= 0 and prof is not None and prof.failure is None:
            # Default clocks are reported as 0; the profiler wants the real clock (the highest).
            freq = m.frequency_applied_mhz or (max(self.supported) if self.supported else 0)
            if freq:
                prof.add(
                    profiler_pb2.InstructionMeasurement(
                        rank=self.cfg.rank,
                        instruction=m.instruction or KIND_TO_PROTO[p.kind],
                        microbatch=m.microbatch,
                        chunk=p.chunk,
                        frequency_mhz=freq,
                        time_s=m.time_s,
                        energy_j=m.energy_j,
                        iteration=p.iteration,
                    )
                )
        if it is not None and it.ended and it.outstanding <= 0:
            self._finish_iterations(force=False)
