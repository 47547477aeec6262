"""Pipeline schedules on the client side: instruction order of a stage and schedule lookups.

The order functions mirror docs/architecture.md §4.2 (and the planner's ``schedule.ts``): in synchronous 1F1B,
stage ``s`` of ``N`` runs ``min(N - s, M)`` warm-up forwards, then alternates backward/forward,
then drains the remaining backwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from perseus.common.v1 import common_pb2

Kind = Literal["forward", "backward"]
"""An instruction kind as trainers name it."""

FORWARD: Kind = "forward"
BACKWARD: Kind = "backward"

KIND_TO_PROTO: Mapping[Kind, common_pb2.InstructionKind.ValueType] = {
    "forward": common_pb2.INSTRUCTION_KIND_FORWARD,
    "backward": common_pb2.INSTRUCTION_KIND_BACKWARD,
}
PROTO_TO_KIND: Mapping[int, Kind] = {v: k for k, v in KIND_TO_PROTO.items()}


def parse_kind(name: str) -> Kind:
    """Maps a hook's instruction name to its kind.

    Zeus names instructions ``"forward"`` and ``"backward"``; frameworks often add detail
    (``"forward_step"``, ``"backward-pass"``, ``"BackwardPass"``), so the prefix decides.
    """
    low = name.lower()
    if low.startswith("forward") or low in ("fwd", "f"):
        return FORWARD
    if low.startswith("backward") or low in ("bwd", "b"):
        return BACKWARD
    raise ValueError(f"instruction name must start with 'forward' or 'backward', got {name!r}")


def one_f_one_b(num_stages: int, stage: int, num_microbatches: int) -> list[tuple[Kind, int]]:
    """The (kind, microbatch) order of ``stage`` in a synchronous 1F1B pipeline."""
    if not 0 <= stage < num_stages:
        raise ValueError(f"stage must be in [0, {num_stages}), got {stage}")
    if num_microbatches < 1:
        raise ValueError(f"num_microbatches must be >= 1, got {num_microbatches}")
    warmup = min(num_stages - stage, num_microbatches)
    order: list[tuple[Kind, int]] = [(FORWARD, m) for m in range(warmup)]
    next_f, next_b = warmup, 0
    while next_b < num_microbatches:
        order.append((BACKWARD, next_b))
        next_b += 1
        if next_f < num_microbatches:
            order.append((FORWARD, next_f))
            next_f += 1
    return order


def gpipe(num_stages: int, stage: int, num_microbatches: int) -> list[tuple[Kind, int]]:
    """The (kind, microbatch) order of ``stage`` in GPipe: all forwards, then all backwards."""
    if not 0 <= stage < num_stages:
        raise ValueError(f"stage must be in [0, {num_stages}), got {stage}")
    return [(FORWARD, m) for m in range(num_microbatches)] + [(BACKWARD, m) for m in range(num_microbatches)]


@dataclass(frozen=True)
class RankSchedule:
    """One version of a rank's schedule as the hooks read it (immutable; swapped atomically).

    ``clocks`` maps (kind, microbatch) to the SM clock in MHz; 0 (or a missing entry) means the
    device's default clocks.
    """

    version: int = 0
    phase: str = "PHASE_UNSPECIFIED"
    reason: str = ""
    clocks: Mapping[tuple[Kind, int], int] = field(default_factory=dict)
    expected_iteration_time_s: float = 0.0
    expected_iteration_energy_j: float = 0.0

    def frequency(self, kind: Kind, microbatch: int) -> int:
        """Clock for one instruction, MHz (0 = default clocks)."""
        return self.clocks.get((kind, microbatch), 0)


DEFAULT_SCHEDULE = RankSchedule()
"""What a rank runs before any schedule arrives: every instruction at the default clocks."""
