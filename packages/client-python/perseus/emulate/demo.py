"""The demo: an emulated GPT-3 175B pipeline job through every Perseus phase, against real services.

    python -m perseus.emulate.demo --server 127.0.0.1:50051 --profile gpt3-175b+a100_sxm_bf16.csv --out demo-out
    python -m perseus.emulate.demo ... --schedule interleaved --chunks 2   # 4 GPUs × 2 chunks per pipeline

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
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import grpc

from perseus.emulate.phases import (
    BASELINE_CAP,
    BUSY_TOLERANCE,
    EPOCH_CLEARED,
    EPOCH_REPORTED,
    EPOCH_STRAGGLER,
    TIME_TOLERANCE,
    DemoState,
    count_clean,
    iteration_row,
    note_detection,
    render_table,
    summarize,
)
from perseus.emulate.trainer import EmulationHandle, EmulationSpec
from perseus.optimizer.v1 import optimizer_pb2, optimizer_pb2_grpc

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
        schedule=args.schedule,
        num_chunks=args.chunks if args.schedule == "interleaved" else 1,
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
    v = spec.num_chunks
    st = DemoState(
        profile=handle.profile, num_stages=n, microbatches=args.microbatches, schedule=spec.schedule, num_chunks=v,
        time_tolerance=args.time_tolerance, busy_tolerance=args.busy_tolerance,
    )
    pending: dict[int, list[dict[str, Any]]] = defaultdict(list)
    stage = "running"
    deadline = t_start + args.timeout
    handle.start()
    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[demo {time.monotonic() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    shape = f"{n} stages" if v == 1 else f"{n} GPUs × {v} chunks (interleaved 1F1B, {n * v} virtual stages)"
    log(f"emulating {args.dp} pipelines × {shape}, M={args.microbatches}, time scale {args.time_scale}")
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
                    # The optimizer may find the straggler from compute times before (or without)
                    # a report: its plan is the extrinsic one whoever asked for it.
                    note_detection(recs, st, log)
                    st.rows.append(iteration_row(it, recs, args.dp, args.blocking_power, st))
                    if st.rows[-1].label != last_label:
                        last_label = st.rows[-1].label
                        reason = st.rows[-1].reason
                        log(f"iteration {it}: {last_label}" + (f" ({reason})" if reason else ""))
            if handle.failed():
                raise RuntimeError(f"emulated ranks failed with exit codes {handle.failed()}")
            if not baseline_done and count_clean(st, "baseline") >= args.window:
                baseline_done = True
                handle.end_baseline_soon()
            if stage == "running" and count_clean(st, "intrinsic") >= (args.intrinsic or args.window):
                handle.set_epoch(EPOCH_STRAGGLER)
                stage = "straggler"
                st.straggler_at = handle.progress()
                st.events.append({"event": "straggler", "dp_rank": 1, "slowdown": args.straggler, "at_iteration": st.straggler_at})
                log(f"pipeline 1 now straggles {args.straggler}×")
            elif args.detect and stage == "straggler" and st.extrinsic_version and count_clean(st, "extrinsic") >= args.window:
                handle.set_epoch(EPOCH_CLEARED)  # the straggler recovers; nobody tells the optimizer
                st.cleared_at = handle.progress()
                stage = "cleared"
                st.events.append({"event": "straggler_recovers", "at_iteration": st.cleared_at})
                log("pipeline 1 recovers (not reported)")
            elif args.detect and stage == "straggler" and handle.progress() - st.straggler_at > args.detect_within:
                st.events.append({"event": "straggler_not_detected", "iterations": args.detect_within})
                log(f"straggler not detected within {args.detect_within} iterations; stopping")
                break
            elif not args.detect and stage == "straggler" and (count_clean(st, "straggler") >= args.window or st.extrinsic_version):
                resp = opt.ReportStraggler(optimizer_pb2.ReportStragglerRequest(job_id=args.job_id, dp_rank=1, slowdown=args.straggler), timeout=10)
                st.extrinsic_version = st.extrinsic_version or resp.schedule_version
                handle.set_epoch(EPOCH_REPORTED)
                stage = "extrinsic"
                st.events.append({"event": "straggler_reported", "schedule_version": resp.schedule_version, "target_iteration_time_s": resp.target_iteration_time_s})
                log(f"straggler reported; target iteration time {resp.target_iteration_time_s:.3f} s (v{resp.schedule_version})")
            elif stage == "extrinsic" and count_clean(st, "extrinsic") >= args.window:
                handle.set_epoch(EPOCH_CLEARED)
                resp = opt.ReportStraggler(optimizer_pb2.ReportStragglerRequest(job_id=args.job_id, dp_rank=1, recovered=True), timeout=10)
                st.recovered_version = resp.schedule_version
                stage = "cleared"
                st.events.append({"event": "straggler_cleared", "schedule_version": resp.schedule_version})
                log("straggler cleared")
            elif stage == "cleared" and count_clean(st, "cleared") >= args.window:
                break
        handle.stop_soon()
        end_wait = time.monotonic() + 20
        while handle.alive() and time.monotonic() < end_wait:
            for rec in handle.records(0.2):
                pending[rec["iteration"]].append(rec)
        for it in sorted(pending):
            if len(pending[it]) == world:
                st.rows.append(iteration_row(it, pending.pop(it), args.dp, args.blocking_power, st))
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
        "pipeline": {"stages": n, "dp": args.dp, "microbatches": args.microbatches, "schedule": spec.schedule, "chunks": v},
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
    ap.add_argument("--stages", type=int, default=0, help="pipeline stages (GPUs) per pipeline (0 = all the profile has, divided by --chunks)")
    ap.add_argument("--schedule", choices=["1f1b", "interleaved"], default="1f1b", help="pipeline schedule (interleaved: Megatron-LM's interleaved 1F1B)")
    ap.add_argument("--chunks", type=int, default=2, help="model chunks per GPU with --schedule interleaved (the profile's stages are the virtual stages)")
    ap.add_argument("--dp", type=int, default=2)
    ap.add_argument("--microbatches", type=int, default=6)
    ap.add_argument("--time-scale", type=float, default=1.0, help="wall seconds per simulated second; must equal the simulated agent's --agent-sim-time-scale (default 1, as the agent's)")
    ap.add_argument("--window", type=int, default=4, help="clean iterations measured per phase")
    ap.add_argument("--straggler", type=float, default=1.2)
    ap.add_argument("--intrinsic", type=int, default=0, help="clean intrinsic iterations (no straggler) before the straggler starts (0 = --window)")
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
    if args.schedule == "interleaved" and args.chunks < 2:
        ap.error(f"--chunks must be >= 2 with --schedule interleaved, got {args.chunks}")
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
