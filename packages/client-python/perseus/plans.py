"""Reader for ``plans.jsonl``, the frontier plans that ``perseus plan`` writes.

One JSON object per line, one line per frontier point, fastest first. Every line has ``index``,
``time_s`` and ``energy_j``, and either ``stages`` (the whole plan: per stage, its instructions'
clocks in MHz in schedule order) or ``changes`` (``[stage, slot, mhz]`` triples: the instructions
whose clock differs from the previous line's plan). ``perseus plan`` writes the delta form by
default (a full plan on the first line and on every 64th after it) and the full form with
``--full-plans``; this reader accepts both, mixed.

Example::

    from perseus.plans import read_plans

    for point in read_plans("out/plans.jsonl"):
        print(point.index, point.time_s, point.energy_j, point.stages[0][:4])
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PlanPoint", "PlansFileError", "decode_plan_lines", "read_plans"]


@dataclass(frozen=True)
class PlanPoint:
    """One frontier point with its whole plan."""

    index: int
    time_s: float
    energy_j: float
    #: Per stage, the clock (MHz) of each instruction in the stage's schedule order.
    stages: list[list[float]]


class PlansFileError(ValueError):
    """A line of plans.jsonl that cannot be decoded (the message names the line)."""


def _number(obj: dict[str, object], key: str, where: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PlansFileError(f"{where}: '{key}' must be a number, got {value!r}")
    return float(value)


def decode_plan_lines(lines: Iterable[str]) -> Iterator[PlanPoint]:
    """Decodes plans.jsonl lines (either form) into full plans, one at a time."""
    current: list[list[float]] | None = None
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"plans.jsonl line {line_no}"
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            raise PlansFileError(f"{where}: not JSON ({err.msg})") from err
        if not isinstance(obj, dict):
            raise PlansFileError(f"{where}: must be a JSON object")
        stages = obj.get("stages")
        changes = obj.get("changes")
        if isinstance(stages, list):
            current = [[float(mhz) for mhz in stage] for stage in stages]
        elif isinstance(changes, list):
            if current is None:
                raise PlansFileError(f"{where}: changes before any full plan")
            for change in changes:
                if not (isinstance(change, list) and len(change) == 3):
                    raise PlansFileError(f"{where}: a change must be [stage, slot, mhz], got {change!r}")
                stage, slot, mhz = change
                if not (isinstance(stage, int) and 0 <= stage < len(current)):
                    raise PlansFileError(f"{where}: no stage {stage!r}")
                if not (isinstance(slot, int) and 0 <= slot < len(current[stage])):
                    raise PlansFileError(f"{where}: no instruction {slot!r} on stage {stage}")
                current[stage][slot] = float(mhz)
        else:
            raise PlansFileError(f"{where}: needs 'stages' or 'changes'")
        yield PlanPoint(
            index=int(_number(obj, "index", where)),
            time_s=_number(obj, "time_s", where),
            energy_j=_number(obj, "energy_j", where),
            stages=[list(stage) for stage in current],
        )


def read_plans(path: str | Path) -> Iterator[PlanPoint]:
    """Reads a plans.jsonl file lazily: one decoded plan in memory at a time."""
    with open(path, encoding="utf-8") as f:
        yield from decode_plan_lines(f)
