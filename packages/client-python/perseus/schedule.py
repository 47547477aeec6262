"""Pipeline schedules on the client side: instruction order of a stage and schedule lookups.

The order functions mirror docs/architecture.md §4.2 (and the planner's ``schedule.ts``): in synchronous 1F1B,
stage ``s`` of ``N`` runs ``min(N - s, M)`` warm-up forwards, then alternates backward/forward,
then drains the remaining backwards. :func:`interleaved` is Megatron-LM's interleaved 1F1B over
``V`` model chunks per GPU (virtual stage ``c·N + r`` is chunk ``c`` of GPU ``r``).
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


def interleaved(num_stages: int, stage: int, num_microbatches: int, num_chunks: int) -> list[tuple[Kind, int, int]]:
    """The (kind, microbatch, chunk) order of GPU ``stage`` in Megatron-LM's interleaved 1F1B.

    With ``N`` GPUs, ``V`` chunks and ``M`` microbatches (``M`` a multiple of ``N``), the GPU runs
    ``total = M·V`` forwards and as many backwards: ``min((N − r − 1)·2 + (V − 1)·N, total)``
    warm-up forwards (all of them when ``M = N``), then one forward and one backward until the
    forwards run out, then the remaining backwards. The k-th forward runs chunk
    ``(k mod N·V) div N``, the k-th backward chunk ``V − 1 − (k mod N·V) div N``, both microbatch
    ``(k div N·V)·N + k mod N``.
    """
    n, r, m, v = num_stages, stage, num_microbatches, num_chunks
    if not 0 <= r < n:
        raise ValueError(f"stage must be in [0, {n}), got {r}")
    if v < 2:
        raise ValueError(f"num_chunks must be >= 2 for interleaved 1F1B, got {v}")
    if m < 1 or m % n:
        raise ValueError(f"num_microbatches must be a positive multiple of num_stages ({n}) for interleaved 1F1B, got {m}")
    total = m * v
    group = n * v
    warmup = total if m == n else min((n - r - 1) * 2 + (v - 1) * n, total)

    def forward(k: int) -> tuple[Kind, int, int]:
        return (FORWARD, (k // group) * n + k % n, (k % group) // n)

    def backward(k: int) -> tuple[Kind, int, int]:
        return (BACKWARD, (k // group) * n + k % n, v - 1 - (k % group) // n)

    order = [forward(f) for f in range(warmup)]
    f, b = warmup, 0
    while f < total:
        order.append(forward(f))
        order.append(backward(b))
        f += 1
        b += 1
    order.extend(backward(k) for k in range(b, total))
    return order


SCHEDULES = ("1f1b", "gpipe", "interleaved")
"""Schedule names the client accepts."""


def stage_order(schedule: str, num_stages: int, stage: int, num_microbatches: int, num_chunks: int = 1) -> list[tuple[Kind, int, int]]:
    """The (kind, microbatch, chunk) order of ``stage`` under ``schedule`` (chunk 0 unless interleaved)."""
    if schedule == "interleaved":
        return interleaved(num_stages, stage, num_microbatches, num_chunks)
    if schedule == "1f1b":
        pairs = one_f_one_b(num_stages, stage, num_microbatches)
    elif schedule == "gpipe":
        pairs = gpipe(num_stages, stage, num_microbatches)
    else:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    return [(kind, mb, 0) for kind, mb in pairs]


@dataclass(frozen=True)
class RankSchedule:
    """One version of a rank's schedule as the hooks read it (immutable; swapped atomically).

    ``clocks`` maps (kind, microbatch, chunk) to the SM clock in MHz (chunk 0 unless interleaved
    1F1B); 0 (or a missing entry) means the device's default clocks.
    """

    version: int = 0
    phase: str = "PHASE_UNSPECIFIED"
    reason: str = ""
    clocks: Mapping[tuple[Kind, int, int], int] = field(default_factory=dict)
    expected_iteration_time_s: float = 0.0
    expected_iteration_energy_j: float = 0.0

    def frequency(self, kind: Kind, microbatch: int, chunk: int = 0) -> int:
        """Clock for one instruction, MHz (0 = default clocks)."""
        return self.clocks.get((kind, microbatch, chunk), 0)


DEFAULT_SCHEDULE = RankSchedule()
"""What a rank runs before any schedule arrives: every instruction at the default clocks."""
