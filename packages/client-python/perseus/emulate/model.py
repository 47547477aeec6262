"""The pipeline DAG's iteration time for a plan (docs/architecture.md §4.2), for checking emulated runs.

The emulator's ranks really wait on each other; this computes what those waits should add up to:
the longest path through F(s,m) → F(s+1,m), B(s+1,m) → B(s,m) and each stage's 1F1B order.
"""

from __future__ import annotations

from collections.abc import Callable

from perseus.emulate.profile import StageProfile
from perseus.schedule import Kind, one_f_one_b

ClockOf = Callable[[int, Kind, int], int]
"""(stage, kind, microbatch) -> MHz (0 = default clocks)."""


def iteration_time_s(profile: StageProfile, num_stages: int, num_microbatches: int, clock_of: ClockOf | None = None, slowdown: float = 1.0) -> float:
    """Longest-path time of one 1F1B iteration with every instruction at ``clock_of`` (default:
    the highest clock), each ``slowdown``× longer."""
    orders = [one_f_one_b(num_stages, s, num_microbatches) for s in range(num_stages)]
    end: dict[tuple[Kind, int, int], float] = {}
    free = [0.0] * num_stages
    idx = [0] * num_stages
    remaining = sum(len(o) for o in orders)
    while remaining:
        progressed = False
        for s in range(num_stages):
            if idx[s] >= len(orders[s]):
                continue
            kind, mb = orders[s][idx[s]]
            dep: tuple[Kind, int, int] | None = None
            if kind == "forward" and s > 0:
                dep = ("forward", s - 1, mb)
            elif kind == "backward" and s < num_stages - 1:
                dep = ("backward", s + 1, mb)
            if dep is not None and dep not in end:
                continue
            start = max(free[s], end[dep] if dep is not None else 0.0)
            f = clock_of(s, kind, mb) if clock_of is not None else 0
            finish = start + profile.time_s(s, kind, f) * slowdown
            end[(kind, s, mb)] = finish
            free[s] = finish
            idx[s] += 1
            remaining -= 1
            progressed = True
        if not progressed:
            raise RuntimeError("1F1B dependency cycle (a bug in the schedule)")
    return max(free)
