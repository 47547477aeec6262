"""The optimizer link: RegisterJob (rank 0) / RegisterRank, the ``WatchSchedule`` stream, and the
ReportIteration sender (its own task: a report never waits behind the schedule stream)."""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from perseus._grpc import PERMANENT_CODES, describe, open_channel
from perseus._link import Link, failure_of
from perseus._records import LinkFailure, StragglerAck
from perseus.errors import ConfigurationError
from perseus.optimizer.v1 import optimizer_pb2, optimizer_pb2_grpc
from perseus.schedule import PROTO_TO_KIND, Kind, RankSchedule

if TYPE_CHECKING:
    from perseus._io import IoCore

class SpecMismatch(ConnectionError):
    """The job id's current generation has another spec than this rank: not (yet) this run's."""


_RETRY_REPORT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


class OptimizerLink(Link):
    name = "optimizer"
    outage = "optimizer at %s unavailable (%s); training continues with the last schedule, retrying"
    recovery = "optimizer at %s reachable again; schedules resume"

    def __init__(self, core: IoCore, url: str, **kw: Any) -> None:
        super().__init__(url, core.cfg.security["optimizer"], **kw)
        self.core = core
        self.schedule = RankSchedule()
        self.registrations = 0
        self.rejected = 0
        self.reports: collections.deque[optimizer_pb2.ReportIterationRequest] = collections.deque(maxlen=10_000)
        self.reported = 0
        self.report_wakeup = asyncio.Event()
        self.generation = 0
        self.spec_hash = ""
        self._stub: optimizer_pb2_grpc.OptimizerAsyncStub | None = None

    def is_expected(self, err: BaseException) -> bool:
        # Another rank before rank 0 registered the job: expected at start-up, not worth a warning.
        return isinstance(err, grpc.aio.AioRpcError) and err.code() == grpc.StatusCode.NOT_FOUND and self.core.cfg.rank.rank != 0

    def warn_transient(self, err: BaseException) -> None:
        if isinstance(err, SpecMismatch):
            self.warner.warn("optimizer-spec", "perseus: optimizer at %s: %s", self.url, err)
        else:
            super().warn_transient(err)

    def permanent(self, err: BaseException) -> LinkFailure | None:
        if self.is_expected(err) or isinstance(err, SpecMismatch):
            return None
        if self.core.cfg.rank.rank != 0 and isinstance(err, grpc.aio.AioRpcError) and err.code() == grpc.StatusCode.FAILED_PRECONDITION:
            # The generation changed between GetJob and RegisterRank: look again.
            details = err.details() or ""
            if "spec" in details or "generation" in details:
                return None
        return super().permanent(err)

    def fail(self, failure: LinkFailure) -> None:
        # No clock changes from a job this client does not belong to: back to default clocks.
        self.schedule = RankSchedule(phase="PHASE_UNSPECIFIED", reason=f"optimizer rejected this client: {failure.code}")
        self.core.publish(self.schedule)
        super().fail(failure)

    def spec(self) -> optimizer_pb2.JobSpec:
        cfg = self.core.cfg
        return optimizer_pb2.JobSpec(
            pipeline=cfg.pipeline_spec(),
            dp_degree=cfg.dp_degree,
            tp_degree=cfg.tp_degree,
            world_size=cfg.world_size,
            gpu_model=cfg.gpu_model or self.core.device_name() or "unknown",
            unit_time_s=cfg.unit_time_s,
            blocking_power_w=cfg.blocking_power_w,
            profiling=cfg.profiling,
        )

    async def serve(self, channel: grpc.aio.Channel) -> None:
        cfg = self.core.cfg
        stub = optimizer_pb2_grpc.OptimizerStub(channel)
        # Clocks (and the GPU model) come from the agent unless given: wait for them, and for the
        # agent's first answer (whether its GPU is simulated).
        await self.core.wait_supported(3600.0)
        await self.core.wait_agent_known(5.0)
        if cfg.rank.rank == 0:
            job = await stub.RegisterJob(optimizer_pb2.RegisterJobRequest(job_id=cfg.job_id, spec=self.spec()), timeout=10, metadata=self.metadata)
            expected = job.spec_hash
        else:
            expected = await self._current_generation(stub)
        reg = await stub.RegisterRank(
            optimizer_pb2.RegisterRankRequest(
                job_id=cfg.job_id,
                rank=cfg.rank,
                node=cfg.node,
                device_index=cfg.device_index,
                supported_frequencies_mhz=self.core.supported,
                simulated=self.core.agent.simulated,
                expected_spec_hash=expected,
            ),
            timeout=10,
            metadata=self.metadata,
        )
        if self.generation and reg.generation != self.generation:
            self.schedule = RankSchedule()  # a new generation: its schedule versions start afresh
            self.core.publish(self.schedule)
        self.generation, self.spec_hash = reg.generation, reg.spec_hash
        self.core.set_profile_job_id(reg.profile_job_id or cfg.job_id)
        self.registrations += 1
        stream = stub.WatchSchedule(
            optimizer_pb2.WatchScheduleRequest(job_id=cfg.job_id, rank=cfg.rank.rank, known_version=self.schedule.version, generation=self.generation),
            metadata=self.metadata,
        )
        self._stub = stub
        self.connected()
        self.report_wakeup.set()
        try:
            async for sched in stream:
                self.on_schedule(sched)
        finally:
            self._stub = None
        if self.stop.is_set():
            return
        raise ConnectionError("optimizer ended the schedule stream")

    async def _current_generation(self, stub: optimizer_pb2_grpc.OptimizerAsyncStub) -> str:
        """A rank other than 0 joins the job's current generation only if its spec is this rank's
        (pipeline, degrees, world size); otherwise it waits at default clocks for rank 0 to
        register this run's spec. Returns the generation's spec hash (checked again, atomically,
        by RegisterRank)."""
        cfg = self.core.cfg
        got = await stub.GetJob(optimizer_pb2.GetJobRequest(job_id=cfg.job_id), timeout=10, metadata=self.metadata)
        spec = got.spec
        mine = cfg.pipeline_spec()
        theirs = (spec.pipeline.schedule, spec.pipeline.num_stages, spec.pipeline.num_microbatches, spec.pipeline.num_chunks, spec.dp_degree, spec.tp_degree, spec.world_size)
        ours = (mine.schedule, mine.num_stages, mine.num_microbatches, mine.num_chunks, cfg.dp_degree, cfg.tp_degree, cfg.world_size)
        if theirs != ours:
            raise SpecMismatch(
                f"job {cfg.job_id!r} generation {got.summary.generation} has (schedule, stages, microbatches, chunks, dp, tp, world) = {theirs}, "
                f"this rank {ours}; waiting at default clocks for rank 0 to register this run"
            )
        return got.summary.spec_hash

    def on_schedule(self, sched: optimizer_pb2.Schedule) -> None:
        if (sched.generation, sched.spec_hash) != (self.generation, self.spec_hash):
            # Never apply a plan made for another spec (a re-registered job id).
            self.rejected += 1
            self.warner.warn(
                "optimizer-generation",
                "perseus: ignored a schedule of job %s generation %d (spec %s); this rank is generation %d (spec %s)",
                sched.job_id, sched.generation, sched.spec_hash[:12], self.generation, self.spec_hash[:12],
            )
            return
        if sched.version < self.schedule.version:
            return
        clocks: dict[tuple[Kind, int, int], int] = {}
        listed: list[tuple[Kind | None, int, int]] = []
        for ins in sched.instructions:
            kind = PROTO_TO_KIND.get(ins.instruction)
            listed.append((kind, ins.microbatch, ins.chunk))
            if kind is not None:
                clocks[(kind, ins.microbatch, ins.chunk)] = ins.frequency_mhz
        reason = sched.reason
        if listed and listed != list(self.core.cfg.order):
            # A plan for another order (schedule kind, chunks or M) would put clocks on the wrong
            # instructions: this version runs at default clocks instead.
            self.rejected += 1
            at = next((i for i, (a, b) in enumerate(zip(listed, self.core.cfg.order, strict=False)) if a != b), min(len(listed), len(self.core.cfg.order)))
            self.warner.warn(
                "optimizer-order",
                "perseus: schedule v%d of job %s lists %d instructions that differ from this rank's %s order of %d from instruction %d on; running it at default clocks",
                sched.version, sched.job_id, len(listed), self.core.cfg.schedule_name, len(self.core.cfg.order), at,
            )
            clocks = {}
            reason = f"{sched.reason} (not applied: not this rank's schedule order)"
        new = RankSchedule(
            version=sched.version,
            phase=optimizer_pb2.Phase.Name(sched.phase) if sched.phase in optimizer_pb2.Phase.values() else str(sched.phase),
            reason=reason,
            clocks=clocks,
            expected_iteration_time_s=sched.expected_iteration_time_s,
            expected_iteration_energy_j=sched.expected_iteration_energy_j,
        )
        self.schedule = new
        self.core.publish(new)

    async def report_straggler(self, req: optimizer_pb2.ReportStragglerRequest, timeout_s: float) -> StragglerAck:
        """One ReportStraggler on a channel of its own (the link may be down or reconnecting)."""
        channel = open_channel(self.url, self.security)
        try:
            resp = await optimizer_pb2_grpc.OptimizerStub(channel).ReportStraggler(req, timeout=timeout_s, metadata=self.metadata)
        except grpc.aio.AioRpcError as err:
            failure = failure_of(self.name, err)
            if failure is not None:
                raise ConfigurationError(self.name, err.code(), failure.message, failure.violations) from None
            raise ConnectionError(f"optimizer at {self.url}: {describe(err)}") from None
        finally:
            await channel.close(grace=None)
        return StragglerAck(resp.schedule_version, resp.target_iteration_time_s)

    async def report_loop(self) -> None:
        """Sends iteration reports in order while the link is up; keeps them (bounded) while down."""
        while True:
            await self.report_wakeup.wait()
            self.report_wakeup.clear()
            while self.reports and self.up and self._stub is not None:
                req = self.reports[0]
                try:
                    await self._stub.ReportIteration(req, timeout=10, metadata=self.metadata)
                    self.reported += 1
                except grpc.aio.AioRpcError as err:
                    if err.code() in _RETRY_REPORT:
                        await asyncio.sleep(0.2)
                        break  # the link reconnects; the report waits for then
                    level = "rejected" if err.code() in PERMANENT_CODES else "failed on"
                    self.warner.warn("optimizer-report", "perseus: optimizer %s an iteration report (%s): %s", level, err.code().name, err.details())
                if self.reports and self.reports[0] is req:
                    self.reports.popleft()
            await asyncio.sleep(0)
