"""Per-iteration rows and per-phase figures of the demo: which phase an iteration belongs to,
whether the host disturbed it, and measured vs planner-predicted savings (see
:mod:`perseus.emulate.demo` for the accounting). All figures are *emulated*.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from perseus.emulate.model import iteration_time_s
from perseus.emulate.profile import StageProfile
from perseus.optimizer.v1 import optimizer_pb2

TIME_TOLERANCE = 0.03
"""An iteration longer than its DAG time by more than this fraction was stretched by the host."""
BUSY_TOLERANCE = 0.01
"""A rank whose instructions lasted longer than the profile by more than this fraction was stalled."""

BASELINE_CAP = 5
"""The measure-only baseline runs until ``window`` undisturbed iterations, at most this × window + 1."""

PHASES = ["baseline", "profiling", "planning", "intrinsic", "straggler", "extrinsic", "cleared"]
EPOCH_NORMAL, EPOCH_STRAGGLER, EPOCH_REPORTED, EPOCH_CLEARED = 0, 1, 2, 3


@dataclass
class IterationRow:
    iteration: int
    label: str
    time_s: float
    pipeline_energy_j: list[float]
    expected_energy_j: list[float]
    expected_time_s: list[float]
    slowdown: list[float]
    reason: str
    measured: bool = True
    clean: bool = True
    frequencies_mhz: dict[int, list[int]] = field(default_factory=dict)
    """Per rank, the clock of each instruction in schedule order (0 = default)."""
    model_time_s: float = 0.0
    """The pipeline DAG's iteration time for the clocks and slowdowns this iteration ran."""
    time_excess: float = 0.0
    """Measured iteration time over ``model_time_s``, minus 1 (host delays on the critical path)."""
    busy_excess: float = 0.0
    """Largest rank's measured busy time over the profile's, minus 1 (host stalls inside instructions)."""
    disturbed: bool = False
    """The host stretched this iteration beyond the tolerances: left out of the phase figures."""


def note_detection(recs: list[dict[str, Any]], st: DemoState, log: Callable[[str], None]) -> None:
    """The optimizer's own straggler verdicts, read from the schedules the ranks ran (with or without a report)."""
    versions = {r["schedule_version"] for r in recs}
    flagged = any("straggler" in r["reason"] for r in recs)
    epoch = recs[0]["epoch"]
    it = recs[0]["iteration"]
    if not st.extrinsic_version and flagged and epoch == EPOCH_STRAGGLER:
        st.extrinsic_version = min(r["schedule_version"] for r in recs if "straggler" in r["reason"])
        st.events.append({"event": "straggler_detected", "iteration": it, "schedule_version": st.extrinsic_version, "delay_iterations": it - st.straggler_at})
        log(f"optimizer detected the straggler after {it - st.straggler_at} iterations (v{st.extrinsic_version})")
    elif st.extrinsic_version and not st.recovered_version and epoch == EPOCH_CLEARED and not flagged and len(versions) == 1:
        st.recovered_version = versions.pop()
        st.events.append({"event": "straggler_clear_detected", "iteration": it, "schedule_version": st.recovered_version, "delay_iterations": it - st.cleared_at})
        log(f"optimizer saw the recovery after {it - st.cleared_at} iterations (v{st.recovered_version})")


@dataclass
class DemoState:
    profile: StageProfile
    num_stages: int
    """Pipeline GPUs N (the profile has N·V virtual stages under interleaved 1F1B)."""
    microbatches: int
    schedule: str = "1f1b"
    num_chunks: int = 1
    time_tolerance: float = TIME_TOLERANCE
    busy_tolerance: float = BUSY_TOLERANCE
    rows: list[IterationRow] = field(default_factory=list)
    straggler_at: int = 0
    cleared_at: int = 0
    extrinsic_version: int = 0
    recovered_version: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


def _label(recs: list[dict[str, Any]], st: DemoState) -> str:
    if any(r["client"] == "baseline" for r in recs):
        return "baseline" if all(r["client"] == "baseline" for r in recs) else "transition"
    versions = {r["schedule_version"] for r in recs}
    epochs = {r["epoch"] for r in recs}
    phases = {r["phase"] for r in recs}
    if len(versions) != 1 or len(epochs) != 1 or len(phases) != 1:
        return "transition"
    version, epoch, phase = versions.pop(), epochs.pop(), phases.pop()
    if phase in ("PHASE_REGISTERING", "PHASE_PROFILING", "PHASE_UNSPECIFIED", ""):
        return "profiling"
    if phase == "PHASE_PLANNING":
        return "planning"
    if epoch == EPOCH_NORMAL:
        return "intrinsic"
    if epoch in (EPOCH_STRAGGLER, EPOCH_REPORTED):
        # Reported or detected, the extrinsic plan is in force from its schedule version on.
        return "extrinsic" if st.extrinsic_version and version >= st.extrinsic_version else "straggler"
    return "cleared" if st.recovered_version and version >= st.recovered_version else "transition"


def model_time_s(recs: list[dict[str, Any]], dp: int, st: DemoState) -> float:
    """What the iteration should have taken: the slowest pipeline's DAG time at its clocks."""
    by = {(r["dp_rank"], r["stage"]): r for r in recs}
    worst = 0.0
    for p in range(dp):

        def clock_of(s: int, i: int, p: int = p) -> int:
            return int(by[(p, s)]["frequencies_mhz"][i])

        t = iteration_time_s(st.profile, st.num_stages, st.microbatches, clock_of, float(by[(p, 0)]["slowdown"]), st.schedule, st.num_chunks)
        worst = max(worst, t)
    return worst


def iteration_row(iteration: int, recs: list[dict[str, Any]], dp: int, blocking_power_w: float, st: DemoState) -> IterationRow:
    energy = [0.0] * dp
    exp_e = [0.0] * dp
    exp_t = [0.0] * dp
    slow = [1.0] * dp
    for r in recs:
        p = r["dp_rank"]
        idle = max(0.0, r["time_s"] - r["busy_s"])
        energy[p] += r["energy_j"] + blocking_power_w * idle
        exp_e[p] = r["expected_iteration_energy_j"]
        exp_t[p] = r["expected_iteration_time_s"]
        slow[p] = r["slowdown"]
    reasons = sorted({r["reason"] for r in recs})
    measured = all(r["measured_instructions"] == len(r["frequencies_mhz"]) for r in recs)
    freqs = {r["rank"]: list(r["frequencies_mhz"]) for r in recs}
    t = max(r["time_s"] for r in recs)
    t_model = model_time_s(recs, dp, st)
    time_excess = t / t_model - 1 if t_model > 0 else 0.0
    busy_excess = max((r["busy_s"] / r["expected_busy_s"] - 1 if r["expected_busy_s"] > 0 else 0.0) for r in recs)
    return IterationRow(
        iteration, _label(recs, st), t, energy, exp_e, exp_t, slow, " | ".join(reasons), measured, frequencies_mhz=freqs,
        model_time_s=t_model, time_excess=time_excess, busy_excess=busy_excess,
        disturbed=time_excess > st.time_tolerance or busy_excess > st.busy_tolerance,
    )


def mark_clean(rows: list[IterationRow]) -> None:
    prev = None
    for row in rows:
        # An iteration counts when its label held for the previous one too (no pipeline fill from
        # another schedule straddles it), the agent measured every instruction of every rank, and the
        # host did not stretch it (see IterationRow.disturbed).
        row.clean = row.label != "transition" and row.label == prev and row.measured and not row.disturbed
        prev = row.label


def count_clean(st: DemoState, label: str) -> int:
    mark_clean(st.rows)
    return sum(1 for r in st.rows if r.clean and r.label == label)


@dataclass
class PhaseResult:
    """One phase: measured and planner-predicted figures over its clean iterations.

    ``compared_energy_j`` / ``predicted_energy_j`` cover the pipelines the saving is computed on
    (all of them, or the non-straggler ones while a straggler is present).
    """

    phase: str
    iterations: int
    iteration_time_s: float | None
    energy_per_iteration_j: float | None
    saving_percent: float | None
    predicted_iteration_time_s: float | None
    predicted_saving_percent: float | None
    note: str = ""
    compared_pipelines: list[int] = field(default_factory=list)
    compared_energy_j: float | None = None
    predicted_energy_j: float | None = None
    disturbed: int = 0
    """Iterations of this phase left out because the host stretched them (IterationRow.disturbed)."""


def _mean(xs: list[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def summarize(rows: list[IterationRow], dp: int, num_stages: int, blocking_power_w: float, frontier: optimizer_pb2.GetFrontierResponse | None, slowdown: float) -> list[PhaseResult]:
    """Per-phase measured vs predicted figures (see the module docstring for the accounting)."""
    mark_clean(rows)
    by: dict[str, list[IterationRow]] = defaultdict(list)
    disturbed: dict[str, int] = defaultdict(int)
    for r in rows:
        if r.clean:
            by[r.label].append(r)
        elif r.disturbed:
            disturbed[r.label] += 1
    base = by.get("baseline", [])
    base_t = _mean([r.time_s for r in base])
    base_p = [_mean([r.pipeline_energy_j[p] for r in base]) for p in range(dp)]
    all_max_e = frontier.all_max_energy_j if frontier is not None else None
    all_max_t = frontier.all_max_time_s if frontier is not None else None
    nb = num_stages * blocking_power_w
    out: list[PhaseResult] = []
    intrinsic_t_pred: float | None = None
    for phase in PHASES:
        rs = by.get(phase, [])
        if not rs:
            why = "the frontier was planned between two iterations" if phase == "planning" else "no clean iteration in this phase"
            out.append(PhaseResult(phase, 0, None, None, None, None, None, why, disturbed=disturbed[phase]))
            continue
        t = statistics.fmean(r.time_s for r in rs)
        e_job = statistics.fmean(sum(r.pipeline_energy_j) for r in rs)
        slowed = [p for p in range(dp) if rs[-1].slowdown[p] > 1.0]
        fair = [p for p in range(dp) if p not in slowed]
        saving: float | None = None
        pred_saving: float | None = None
        pred_t: float | None = None
        pred_e_cmp: float | None = None
        note = ""
        e_cmp = statistics.fmean(sum(r.pipeline_energy_j[p] for p in fair) for r in rs)
        base_known = [b for b in base_p if b is not None]
        if base_t is not None and len(base_known) == dp:
            if not slowed:
                saving = 100.0 * (1 - e_job / sum(base_known))
            else:
                e_fair = statistics.fmean(sum(r.pipeline_energy_j[p] for p in fair) for r in rs)
                ref = sum(base_known[p] + nb * (t - base_t) for p in fair)
                saving = 100.0 * (1 - e_fair / ref)
                note = f"savings of pipelines {fair} vs all-max clocks under the same straggler"
        if all_max_e and all_max_t:
            exp_e = [statistics.fmean(r.expected_energy_j[p] for r in rs) for p in range(dp)]
            exp_t = [statistics.fmean(r.expected_time_s[p] for r in rs) for p in range(dp)]
            if phase == "baseline":
                pred_t, pred_saving, pred_e_cmp = all_max_t, 0.0, dp * all_max_e
            elif phase in ("intrinsic", "cleared") and all(exp_e):
                pred_t = max(exp_t)
                pred_e_cmp = sum(exp_e)
                pred_saving = 100.0 * (1 - sum(exp_e) / (dp * all_max_e))
                if phase == "intrinsic":
                    intrinsic_t_pred = pred_t
            elif phase in ("straggler", "extrinsic") and all(exp_e):
                t_intr = intrinsic_t_pred or max(exp_t[p] for p in slowed)
                t_strag = slowdown * t_intr
                t_pred = max([t_strag] + [exp_t[p] for p in fair])
                pred_t = t_pred
                pred_e_cmp = sum(exp_e[p] + nb * (t_pred - exp_t[p]) for p in fair)
                ref = len(fair) * (all_max_e + nb * (t_pred - all_max_t))
                pred_saving = 100.0 * (1 - pred_e_cmp / ref)
        out.append(PhaseResult(phase, len(rs), t, e_job, saving, pred_t, pred_saving, note, fair, e_cmp, pred_e_cmp, disturbed[phase]))
    return out


_COLUMNS = [
    # (header, width, format) of the numeric columns; the phase name comes first.
    ("iters", 5, "d"),
    ("left out", 8, "d"),
    ("iter s", 7, ".3f"),
    ("pred s", 7, ".3f"),
    ("J/iter", 8, ".1f"),
    ("pred J", 8, ".1f"),
    ("saving %", 8, ".2f"),
    ("pred %", 7, ".2f"),
    ("|Δ| pp", 6, ".2f"),
]


def _cell(x: float | None, width: int, spec: str) -> str:
    if x is None:
        return "—".rjust(width)
    text = format(x, spec)
    if text.startswith("-") and float(text) == 0:
        text = text[1:]  # no "-0.00" for a value that rounds to zero
    return text.rjust(width)


def render_table(results: list[PhaseResult], dp: int, time_scale: float) -> str:
    """The per-phase table: fixed-width, right-aligned columns, "—" where a figure does not exist."""
    head = f"{'phase':<10} " + " ".join(h.rjust(w) for h, w, _ in _COLUMNS)
    lines = [
        f"Perseus demo — EMULATED: simulated A100 GPUs, {dp} pipelines, time scale {time_scale:g} (energy per iteration of the compared pipelines)",
        head,
        "-" * len(head),
    ]
    for r in results:
        delta = abs(r.saving_percent - r.predicted_saving_percent) if r.saving_percent is not None and r.predicted_saving_percent is not None else None
        values: list[float | None] = [
            r.iterations,
            r.disturbed,
            r.iteration_time_s,
            r.predicted_iteration_time_s,
            r.compared_energy_j,
            r.predicted_energy_j,
            r.saving_percent,
            r.predicted_saving_percent,
            delta,
        ]
        mark = "*" if r.note.startswith("savings of pipelines") else ""
        lines.append(f"{r.phase:<10} " + " ".join(_cell(v, w, f) for v, (_, w, f) in zip(values, _COLUMNS, strict=True)) + mark)
    notes = sorted({r.note for r in results if r.note and (r.iterations or r.phase == "planning")})
    lines.extend(f"  * {n}" for n in notes)
    if any(r.disturbed for r in results):
        lines.append("  left out: iterations the host stretched beyond the DAG time or the profile's instruction times (busy machine)")
    return "\n".join(lines)
