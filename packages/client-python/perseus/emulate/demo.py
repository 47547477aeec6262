"""The demo: an emulated GPT-3 175B pipeline job through every Perseus phase, against real services.

    python -m perseus.emulate.demo --server 127.0.0.1:50051 --profile gpt3-175b+a100_sxm_bf16.csv --out demo-out

Phases (each measured over a window of clean iterations; the first iteration after any change is
dropped because a pipeline fill straddles it):

1. baseline — measure-only clients: the agent measures, no clock is changed (all max clocks);
2. profiling — the optimizer's online sweep; 3. planning — default clocks while the frontier is
   computed; 4. intrinsic — the fastest frontier plan;
5. straggler — pipeline 1 is slowed 1.2× (intrinsic plan still everywhere);
6. extrinsic — the straggler is reported; the other pipelines get the least-energy plan that fits;
7. cleared — the straggler recovers and is reported so; back to intrinsic.

Energy of one pipeline iteration = Σ over its ranks of (instruction energy the agent measured +
blocking power × the time the rank was not computing), the same accounting the planner uses
(docs/architecture.md §4.2), so measured and predicted savings compare like with like. Savings in straggler
phases are those of the non-straggler pipelines against all-max clocks under the same straggler
(the paper's extrinsic definition). All figures are *emulated*: simulated GPUs, time-scaled sleeps.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from perseus.emulate.model import iteration_time_s
from perseus.emulate.profile import StageProfile
from perseus.emulate.trainer import EmulationHandle, EmulationSpec
from perseus.optimizer.v1 import optimizer_pb2, optimizer_pb2_grpc
from perseus.schedule import Kind, one_f_one_b

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


def _note_detection(recs: list[dict[str, Any]], st: DemoState, log: Callable[[str], None]) -> None:
    """Detection mode: the optimizer's own straggler verdicts, read from the schedules ranks ran."""
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
    microbatches: int
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
    n, m = st.num_stages, st.microbatches
    index = [{op: i for i, op in enumerate(one_f_one_b(n, s, m))} for s in range(n)]
    by = {(r["dp_rank"], r["stage"]): r for r in recs}
    worst = 0.0
    for p in range(dp):

        def clock_of(s: int, kind: Kind, mb: int, p: int = p) -> int:
            return int(by[(p, s)]["frequencies_mhz"][index[s][(kind, mb)]])

        worst = max(worst, iteration_time_s(st.profile, n, m, clock_of, slowdown=float(by[(p, 0)]["slowdown"])))
    return worst


def _row(iteration: int, recs: list[dict[str, Any]], dp: int, blocking_power_w: float, st: DemoState) -> IterationRow:
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


def _mark_clean(rows: list[IterationRow]) -> None:
    prev = None
    for row in rows:
        # An iteration counts when its label held for the previous one too (no pipeline fill from
        # another schedule straddles it), the agent measured every instruction of every rank, and the
        # host did not stretch it (see IterationRow.disturbed).
        row.clean = row.label != "transition" and row.label == prev and row.measured and not row.disturbed
        prev = row.label


def _count_clean(st: DemoState, label: str) -> int:
    _mark_clean(st.rows)
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
    _mark_clean(rows)
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
    return ("—" if x is None else format(x, spec)).rjust(width)


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


# ---- driver ------------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.monotonic()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = EmulationSpec(
        profile_csv=args.profile,
        server_url=args.server,
        agent_url=args.agent_url,
        profiler_url=args.profiler_url,
        job_id=args.job_id,
        num_stages=args.stages,
        dp_degree=args.dp,
        num_microbatches=args.microbatches,
        time_scale=args.time_scale,
        baseline_iterations=BASELINE_CAP * args.window + 1,
        straggler_dp_rank=1,
        straggler_slowdown=args.straggler,
        gpu_model="A100-SXM4 (simulated)",
        blocking_power_w=args.blocking_power,
        profiling={"iterations_per_frequency": args.iterations_per_frequency, "frequency_stride": args.frequency_stride},
    )
    handle = EmulationHandle(spec)
    n = handle.num_stages
    world = handle.world_size
    channel = grpc.insecure_channel(args.server.removeprefix("grpc://"))
    opt = optimizer_pb2_grpc.OptimizerStub(channel)
    st = DemoState(profile=handle.profile, num_stages=n, microbatches=args.microbatches, time_tolerance=args.time_tolerance, busy_tolerance=args.busy_tolerance)
    pending: dict[int, list[dict[str, Any]]] = defaultdict(list)
    stage = "running"
    deadline = t_start + args.timeout
    handle.start()
    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[demo {time.monotonic() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    log(f"emulating {args.dp} pipelines × {n} stages, M={args.microbatches}, time scale {args.time_scale}")
    last_label = ""
    baseline_done = False
    last_detail = ""
    next_status = 0.0
    try:
        while True:
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + 0.5
                try:
                    js = opt.GetJobStatus(optimizer_pb2.GetJobStatusRequest(job_id=args.job_id), timeout=2)
                    if js.detail != last_detail:
                        last_detail = js.detail
                        st.events.append({"event": "job_status", "t_s": round(time.monotonic() - t_start, 2), "phase": optimizer_pb2.Phase.Name(js.phase), "detail": js.detail})
                        if js.detail.startswith("frontier"):
                            log(f"optimizer: {js.detail}")
                except grpc.RpcError:
                    pass
            if time.monotonic() > deadline:
                st.events.append({"event": "timeout", "stage": stage})
                log(f"timeout in stage {stage}; stopping with what was measured")
                break
            for rec in handle.records(0.2):
                pending[rec["iteration"]].append(rec)
            for it in sorted(pending):
                if len(pending[it]) == world:
                    recs = pending.pop(it)
                    if args.detect:
                        _note_detection(recs, st, log)
                    st.rows.append(_row(it, recs, args.dp, args.blocking_power, st))
                    if st.rows[-1].label != last_label:
                        last_label = st.rows[-1].label
                        reason = st.rows[-1].reason
                        log(f"iteration {it}: {last_label}" + (f" ({reason})" if reason else ""))
            if handle.failed():
                raise RuntimeError(f"emulated ranks failed with exit codes {handle.failed()}")
            if not baseline_done and _count_clean(st, "baseline") >= args.window:
                baseline_done = True
                handle.end_baseline_soon()
            if stage == "running" and _count_clean(st, "intrinsic") >= args.window:
                handle.set_epoch(EPOCH_STRAGGLER)
                stage = "straggler"
                st.straggler_at = handle.progress()
                st.events.append({"event": "straggler", "dp_rank": 1, "slowdown": args.straggler, "at_iteration": st.straggler_at})
                log(f"pipeline 1 now straggles {args.straggler}×")
            elif args.detect and stage == "straggler" and st.extrinsic_version and _count_clean(st, "extrinsic") >= args.window:
                handle.set_epoch(EPOCH_CLEARED)  # the straggler recovers; nobody tells the optimizer
                st.cleared_at = handle.progress()
                stage = "cleared"
                st.events.append({"event": "straggler_recovers", "at_iteration": st.cleared_at})
                log("pipeline 1 recovers (not reported)")
            elif args.detect and stage == "straggler" and handle.progress() - st.straggler_at > args.detect_within:
                st.events.append({"event": "straggler_not_detected", "iterations": args.detect_within})
                log(f"straggler not detected within {args.detect_within} iterations; stopping")
                break
            elif not args.detect and stage == "straggler" and _count_clean(st, "straggler") >= args.window:
                resp = opt.ReportStraggler(optimizer_pb2.ReportStragglerRequest(job_id=args.job_id, dp_rank=1, slowdown=args.straggler), timeout=10)
                st.extrinsic_version = resp.schedule_version
                handle.set_epoch(EPOCH_REPORTED)
                stage = "extrinsic"
                st.events.append({"event": "straggler_reported", "schedule_version": resp.schedule_version, "target_iteration_time_s": resp.target_iteration_time_s})
                log(f"straggler reported; target iteration time {resp.target_iteration_time_s:.3f} s (v{resp.schedule_version})")
            elif stage == "extrinsic" and _count_clean(st, "extrinsic") >= args.window:
                handle.set_epoch(EPOCH_CLEARED)
                resp = opt.ReportStraggler(optimizer_pb2.ReportStragglerRequest(job_id=args.job_id, dp_rank=1, recovered=True), timeout=10)
                st.recovered_version = resp.schedule_version
                stage = "cleared"
                st.events.append({"event": "straggler_cleared", "schedule_version": resp.schedule_version})
                log("straggler cleared")
            elif stage == "cleared" and _count_clean(st, "cleared") >= args.window:
                break
        handle.stop_soon()
        end_wait = time.monotonic() + 20
        while handle.alive() and time.monotonic() < end_wait:
            for rec in handle.records(0.2):
                pending[rec["iteration"]].append(rec)
        for it in sorted(pending):
            if len(pending[it]) == world:
                st.rows.append(_row(it, pending.pop(it), args.dp, args.blocking_power, st))
    finally:
        handle.terminate()
    frontier: optimizer_pb2.GetFrontierResponse | None = None
    status: optimizer_pb2.GetJobStatusResponse | None = None
    try:
        frontier = opt.GetFrontier(optimizer_pb2.GetFrontierRequest(job_id=args.job_id), timeout=10)
        status = opt.GetJobStatus(optimizer_pb2.GetJobStatusRequest(job_id=args.job_id), timeout=10)
    except grpc.RpcError as err:
        st.events.append({"event": "frontier_unavailable", "code": err.code().name, "details": err.details()})
    channel.close()
    st.rows.sort(key=lambda r: r.iteration)
    results = summarize(st.rows, args.dp, n, args.blocking_power, frontier, args.straggler)
    planned = [e["detail"] for e in st.events if e.get("event") == "job_status" and str(e.get("detail", "")).startswith("frontier")]
    for r in results:
        if r.phase == "planning" and planned:
            r.note = f"optimizer: {planned[0]}" + (" (between two iterations)" if r.iterations == 0 else "")
    wall_s = time.monotonic() - t_start
    table = render_table(results, args.dp, args.time_scale)
    deltas = [abs(r.saving_percent - r.predicted_saving_percent) for r in results if r.saving_percent is not None and r.predicted_saving_percent is not None and r.phase != "baseline"]
    summary = {
        "emulated": True,
        "job_id": args.job_id,
        "profile": str(args.profile),
        "pipeline": {"stages": n, "dp": args.dp, "microbatches": args.microbatches, "schedule": "1f1b"},
        "time_scale": args.time_scale,
        "blocking_power_w": args.blocking_power,
        "straggler_slowdown": args.straggler,
        "straggler_mode": "detected" if args.detect else "reported",
        "detection_delay_iterations": next((e["delay_iterations"] for e in st.events if e["event"] == "straggler_detected"), None),
        "recovery_delay_iterations": next((e["delay_iterations"] for e in st.events if e["event"] == "straggler_clear_detected"), None),
        "tolerances": {"time": args.time_tolerance, "busy": args.busy_tolerance},
        "wall_time_s": round(wall_s, 2),
        "phases": [r.__dict__ for r in results],
        "max_saving_gap_pp": max(deltas) if deltas else None,
        "frontier": None if frontier is None else {
            "points": [{"time_s": p.time_s, "energy_j": p.energy_j} for p in frontier.points],
            "all_max_time_s": frontier.all_max_time_s,
            "all_max_energy_j": frontier.all_max_energy_j,
            "min_energy_time_s": frontier.min_energy_time_s,
            "chosen_index": frontier.chosen_index,
        },
        "predicted_saving_percent_status": status.predicted_saving_percent if status is not None else None,
        "events": st.events,
        "iterations": [r.__dict__ for r in st.rows],
        "table": table,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o)))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m perseus.emulate.demo", description="Perseus end-to-end demo on an emulated pipeline job.")
    ap.add_argument("--server", required=True, help="optimizer address (agent and profiler too unless given)")
    ap.add_argument("--agent-url", default=None)
    ap.add_argument("--profiler-url", default=None)
    ap.add_argument("--profile", required=True, help="stage profile CSV (the agent's simulated GPUs must use the same)")
    ap.add_argument("--out", default="demo-out", help="where summary.json goes (perseus demo draws frontier.svg and timeline.svg from it)")
    ap.add_argument("--job-id", default=f"demo-{int(time.time())}")
    ap.add_argument("--stages", type=int, default=0, help="pipeline stages (0 = all the profile has)")
    ap.add_argument("--dp", type=int, default=2)
    ap.add_argument("--microbatches", type=int, default=6)
    ap.add_argument("--time-scale", type=float, default=0.25)
    ap.add_argument("--window", type=int, default=4, help="clean iterations measured per phase")
    ap.add_argument("--straggler", type=float, default=1.2)
    ap.add_argument("--blocking-power", type=float, default=83.64, help="W; A100 SXM per the paper's artifact")
    ap.add_argument("--iterations-per-frequency", type=int, default=2)
    ap.add_argument("--frequency-stride", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=160.0)
    ap.add_argument("--detect", action="store_true", help="never call ReportStraggler: the optimizer must detect the straggler (and its recovery) itself")
    ap.add_argument("--detect-within", type=int, default=40, help="iterations the optimizer gets to detect the straggler in --detect mode")
    ap.add_argument("--time-tolerance", type=float, default=TIME_TOLERANCE, help="iteration time over its DAG time beyond which an iteration counts as disturbed by the host")
    ap.add_argument("--busy-tolerance", type=float, default=BUSY_TOLERANCE, help="instruction time over the profile's beyond which an iteration counts as disturbed")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.dp < 2:
        ap.error(f"--dp must be >= 2 (the straggler phases need a second pipeline), got {args.dp}")
    if not args.straggler > 1.0:
        ap.error(f"--straggler must be > 1, got {args.straggler}")
    summary = run_demo(args)
    print(summary["table"])
    gap = summary["max_saving_gap_pp"]
    disturbed = sum(p["disturbed"] for p in summary["phases"])
    print(f"wall time {summary['wall_time_s']:.1f} s; max |measured − predicted| saving gap {'—' if gap is None else f'{gap:.2f}'} pp; {disturbed} host-stretched iterations left out")
    print(f"wrote {Path(args.out) / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
