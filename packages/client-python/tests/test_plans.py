"""perseus.plans: the delta form of plans.jsonl decodes to the full form, as `perseus plan` writes both."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from perseus.plans import PlansFileError, decode_plan_lines, read_plans

DATA = Path(__file__).parent / "data"


def test_delta_file_decodes_to_the_full_file() -> None:
    # Both written by `perseus plan` from the same frontier (see data/README.md): GPT-3 175B on
    # A100, 4 stages, 6 microbatches; 248 points, so the delta form has four full plans.
    delta = list(read_plans(DATA / "plans-delta.jsonl"))
    full = list(read_plans(DATA / "plans-full.jsonl"))
    assert len(delta) == len(full) > 64
    assert delta == full
    lines = (DATA / "plans-delta.jsonl").read_text().splitlines()
    with_stages = [i for i, line in enumerate(lines) if "stages" in json.loads(line)]
    assert with_stages == list(range(0, len(lines), 64))
    # Smaller even with 48 instructions a plan (the gap grows with the pipeline).
    assert (DATA / "plans-delta.jsonl").stat().st_size * 2 < (DATA / "plans-full.jsonl").stat().st_size


def test_points_are_fastest_first_and_plans_whole() -> None:
    points = list(read_plans(DATA / "plans-delta.jsonl"))
    assert [p.index for p in points] == list(range(len(points)))
    assert all(a.time_s < b.time_s and a.energy_j > b.energy_j for a, b in itertools.pairwise(points))
    # 1F1B on 4 stages: every stage runs 6 forwards and 6 backwards.
    assert all(len(p.stages) == 4 and all(len(s) == 12 for s in p.stages) for p in points)


def test_changes_apply_to_the_previous_plan() -> None:
    lines = [
        '{"index":0,"time_s":1.0,"energy_j":10.0,"stages":[[1410,1410],[1410,1410]]}',
        '{"index":1,"time_s":1.1,"energy_j":9.0,"changes":[[1,0,1200]]}',
        "",
        '{"index":2,"time_s":1.2,"energy_j":8.5,"changes":[[0,1,1100],[1,1,1000]]}',
    ]
    points = list(decode_plan_lines(lines))
    assert [p.stages for p in points] == [
        [[1410, 1410], [1410, 1410]],
        [[1410, 1410], [1200, 1410]],
        [[1410, 1100], [1200, 1000]],
    ]
    assert points[2].energy_j == 8.5


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"index":0,"time_s":1,"energy_j":1,"changes":[[0,0,1]]}', "changes before any full plan"),
        ('{"index":0,"time_s":1,"energy_j":1}', "needs 'stages' or 'changes'"),
        ("[1, 2]", "must be a JSON object"),
        ("{nope", "not JSON"),
        ('{"index":0,"time_s":"x","energy_j":1,"stages":[[1]]}', "'time_s' must be a number"),
    ],
)
def test_bad_lines_name_the_line(line: str, message: str) -> None:
    with pytest.raises(PlansFileError, match=f"line 1: .*{message}"):
        list(decode_plan_lines([line]))


@pytest.mark.parametrize("change", ["[5,0,1]", "[0,7,1]", "[0,0]"])
def test_changes_out_of_range_are_rejected(change: str) -> None:
    lines = ['{"index":0,"time_s":1,"energy_j":1,"stages":[[1,1]]}', f'{{"index":1,"time_s":2,"energy_j":0.5,"changes":[{change}]}}']
    with pytest.raises(PlansFileError, match="line 2"):
        list(decode_plan_lines(lines))
