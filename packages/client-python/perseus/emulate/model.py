"""The pipeline DAG's iteration time for a plan (docs/architecture.md §4.2), for checking emulated runs.

The emulator's ranks really wait on each other; this computes what those waits should add up to:
the longest path through F(v,m) → F(v+1,m), B(v+1,m) → B(v,m) over virtual stages ``v`` (the
stages themselves unless interleaved 1F1B, where chunk ``c`` of GPU ``r`` is ``v = c·N + r``),
F(last,m) → B(last,m), and each GPU's schedule order.
"""

from __future__ import annotations

from collections.abc import Callable

from perseus.emulate.profile import StageProfile
from perseus.schedule import Kind, stage_order

ClockOf = Callable[[int, int], int]
"""(GPU stage, position in its schedule order) -> MHz (0 = default clocks)."""


def iteration_time_s(
    profile: StageProfile,
    num_stages: int,
    num_microbatches: int,
    clock_of: ClockOf | None = None,
    slowdown: float = 1.0,
    schedule: str = "1f1b",
    num_chunks: int = 1,
) -> float:
    """Longest-path time of one iteration with every instruction at ``clock_of`` (default: the
    highest clock), each ``slowdown``× longer."""
    n = num_stages
    orders = [stage_order(schedule, n, s, num_microbatches, num_chunks) for s in range(n)]
    last = n * num_chunks - 1
    end: dict[tuple[Kind, int, int], float] = {}
    free = [0.0] * n
    idx = [0] * n
    remaining = sum(len(o) for o in orders)
    while remaining:
        progressed = False
        for s in range(n):
            if idx[s] >= len(orders[s]):
                continue
            kind, mb, chunk = orders[s][idx[s]]
            v = chunk * n + s
            dep: tuple[Kind, int, int] | None = None
            if kind == "forward" and v > 0:
                dep = ("forward", v - 1, mb)
            elif kind == "backward":
                dep = ("backward", v + 1, mb) if v < last else ("forward", v, mb)
            if dep is not None and dep not in end:
                continue
            start = max(free[s], end[dep] if dep is not None else 0.0)
            f = clock_of(s, idx[s]) if clock_of is not None else 0
            finish = start + profile.time_s(v, kind, f) * slowdown
            end[(kind, v, mb)] = finish
            free[s] = finish
            idx[s] += 1
            remaining -= 1
            progressed = True
        if not progressed:
            raise RuntimeError(f"{schedule} dependency cycle (a bug in the schedule)")
    return max(free)
