"""Hook cost on the training thread: median / p99 of on_instruction_begin + on_instruction_end.

Runs 10,000 instructions (1F1B order, M microbatches per step) through a PipelineFrequencyOptimizer
whose background thread is live. By default the services are unreachable (a closed port), the
worst case for a fail-safe client; with --server ADDR it talks to a running `perseus serve`.
Prints one JSON line, plus the cost of a bare `time.perf_counter_ns()` pair as the baseline.

    .venv/bin/python tools/bench/client/hook_cost.py [--server 127.0.0.1:50051] [--instructions 10000] [--compute-us 1000]

--compute-us makes each instruction last that long (a sleep: a GPU trainer's host thread waits in
the device sync with the GIL released), so the I/O thread works while instructions run, as in
real training; 0 is the back-to-back worst case.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

import perseus


def percentile(sorted_values: list[int], q: float) -> float:
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[idx])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="127.0.0.1:1", help="optimizer/agent/profiler address (default: unreachable)")
    ap.add_argument("--instructions", type=int, default=10_000)
    ap.add_argument("--microbatches", type=int, default=8)
    ap.add_argument("--compute-us", type=float, default=0.0, help="sleep between begin and end (emulated compute), µs")
    args = ap.parse_args()

    m = args.microbatches
    order = perseus.one_f_one_b(2, 0, m)
    opt = perseus.PipelineFrequencyOptimizer(
        0, 0, 0, 0, 0, 1, 2, 1, 2, args.server,
        job_id="bench-hooks", num_microbatches=m, sync="none",
        supported_frequencies_mhz=[1410, 1200, 1005], retry_max_s=1.0,
    )
    if args.server != "127.0.0.1:1":
        opt.wait_ready(timeout_s=30)
    # Warm up (first-call caches, thread start).
    for _ in range(3):
        with opt.step():
            for kind, _mb in order:
                with opt.instruction(kind):
                    pass
    gc.collect()
    costs: list[int] = []
    base: list[int] = []
    clock = time.perf_counter_ns
    compute_s = args.compute_us / 1e6
    done = 0
    while done < args.instructions:
        opt.on_step_begin()
        for kind, _mb in order:
            if done >= args.instructions:
                break
            t0 = clock()
            opt.on_instruction_begin(kind)
            t1 = clock()
            if compute_s:
                time.sleep(compute_s)  # a GPU trainer waits in the device sync here, GIL released
            t2 = clock()
            opt.on_instruction_end(kind)
            t3 = clock()
            costs.append((t1 - t0) + (t3 - t2))
            b0 = clock()
            b1 = clock()
            base.append(b1 - b0)
            done += 1
        opt.on_step_end()
    opt.flush(timeout_s=10.0)
    status = opt.status()
    opt.close(timeout_s=2.0)
    costs.sort()
    base.sort()
    out = {
        "bench": "client-hook-cost",
        "instructions": len(costs),
        "server": args.server,
        "agent_connected": status.agent_connected,
        "compute_us": args.compute_us,
        "measurements_received": status.measurements_received,
        "begin_plus_end_median_us": round(statistics.median(costs) / 1000, 2),
        "begin_plus_end_p99_us": round(percentile(costs, 0.99) / 1000, 2),
        "begin_plus_end_max_us": round(costs[-1] / 1000, 2),
        "per_hook_median_us": round(statistics.median(costs) / 2000, 2),
        "baseline_clock_pair_median_us": round(statistics.median(base) / 1000, 3),
        "targets": {"median_us": 20, "p99_us": 100},
    }
    out["pass"] = out["begin_plus_end_median_us"] <= 20 and out["begin_plus_end_p99_us"] <= 100
    print(json.dumps(out))


if __name__ == "__main__":
    main()
