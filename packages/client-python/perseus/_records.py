"""What the client's introspection calls return (plain, immutable-by-convention values)."""

from __future__ import annotations

from dataclasses import dataclass, field

from perseus.schedule import Kind


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
    chunk: int = 0
    """Model chunk on this GPU (interleaved 1F1B; else 0)."""


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
    compute_time_s: float = 0.0
    """Step begin to the end of the rank's last instruction, s: its own critical path, before any
    wait in the gradient all-reduce (0 when no instruction ran)."""


@dataclass(frozen=True)
class LinkFailure:
    """A link stopped for good: a service answered a permanent status code."""

    link: str
    code: str
    """The gRPC status code's name, e.g. ``"FAILED_PRECONDITION"``."""
    message: str
    violations: tuple[tuple[str, str], ...] = ()


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
    simulated: bool = False
    """The agent's device is a simulated GPU: energies and savings are emulated, not measured."""
    failures: dict[str, LinkFailure] = field(default_factory=dict)
    """Links stopped by a permanent error (by link name: ``agent``, ``optimizer``, ``profiler``)."""
    schedules_rejected: int = 0
    """Schedules not applied because their job generation or spec hash differs from this rank's, or
    because their instructions are not this rank's schedule order (wrong schedule, chunks or M)."""
    order_mismatches: int = 0
    """Hook calls whose instruction (kind, or the ``chunk`` passed) was not the one this rank's
    schedule order has next; each ran at default clocks."""


@dataclass(frozen=True)
class StragglerAck:
    """The optimizer's answer to a straggler report."""

    schedule_version: int
    """Schedule version after the report."""
    target_iteration_time_s: float
    """Iteration time the other pipelines now target, s (0 when back to intrinsic)."""
