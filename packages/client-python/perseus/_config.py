"""What the client's I/O side needs to know, filled once by :class:`perseus.PipelineFrequencyOptimizer`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from perseus._grpc import LinkSecurity
from perseus._warn import RateLimitedWarner
from perseus.common.v1 import common_pb2
from perseus.optimizer.v1 import optimizer_pb2
from perseus.schedule import Kind


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
    schedule_kind: common_pb2.ScheduleKind.ValueType
    schedule_name: str
    """``"1f1b"``, ``"gpipe"`` or ``"interleaved"``."""
    num_chunks: int
    """Model chunks per GPU (1 unless interleaved)."""
    order: tuple[tuple[Kind, int, int], ...]
    """This rank's (kind, microbatch, chunk) order per iteration; every schedule must list it."""
    optimizer_url: str | None
    agent_url: str
    profiler_url: str | None
    security: dict[str, LinkSecurity]
    """Per link name (``agent``, ``optimizer``, ``profiler``)."""
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
    warn_if_simulated: bool = True
    """One warning when the agent's GPU is simulated (the emulator, which says so itself, turns it off)."""

    def pipeline_spec(self) -> common_pb2.PipelineSpec:
        """The job's pipeline as every service is told it (num_chunks only under interleaved 1F1B)."""
        return common_pb2.PipelineSpec(
            schedule=self.schedule_kind,
            num_stages=self.pp_degree,
            num_microbatches=self.num_microbatches,
            num_chunks=self.num_chunks if self.schedule_name == "interleaved" else 0,
        )
