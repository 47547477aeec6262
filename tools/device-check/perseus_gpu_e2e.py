"""The whole system on a real GPU: `perseus serve` (agent on NVML + profiler + optimizer) and a Python
training loop with `perseus.PipelineFrequencyOptimizer` around real CUDA work.

    python3 tools/device-check/perseus_gpu_e2e.py --server unix:/tmp/perseus.sock --out DIR

One GPU runs a one-stage "pipeline" (1F1B, M microbatches; forward = F bf16 8192³ matmuls,
backward = 2F). First a baseline without Perseus (default clocks), then the same loop with the
hooks: the optimizer profiles it online (sweeping clocks), plans, and deploys the intrinsic plan
(no slower than all-max clocks). Energy per iteration is read from NVML directly around each
iteration, independently of Perseus. Writes gpu_e2e.json / gpu_e2e.csv; exits 1 if the job never
reaches PHASE_DEPLOYED or the deployed plan is slower than the baseline by more than 3 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from gpu_common import bf16_operands, nvml_energy_reader, use_client_package  # noqa: E402

use_client_package()

import grpc  # noqa: E402
import torch  # noqa: E402

import perseus  # noqa: E402
from perseus.optimizer.v1 import optimizer_pb2, optimizer_pb2_grpc  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--microbatches", type=int, default=4)
    ap.add_argument("--forward-matmuls", type=int, default=30)
    ap.add_argument("--baseline-iterations", type=int, default=8)
    ap.add_argument("--deployed-iterations", type=int, default=10)
    ap.add_argument("--max-iterations", type=int, default=200)
    ap.add_argument("--iterations-per-frequency", type=int, default=3)
    ap.add_argument("--frequency-stride", type=int, default=6)
    ap.add_argument("--floor-mhz", type=int, default=900)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    M = args.microbatches

    _, energy_mj = nvml_energy_reader(args.device)
    dev, a, b = bf16_operands(args.device, warmup=10)

    def run(kind: str) -> None:
        for _ in range(args.forward_matmuls * (1 if kind == "forward" else 2)):
            a @ b

    rows: list[dict] = []

    def iteration(label: str, opt: "perseus.PipelineFrequencyOptimizer | None") -> None:
        torch.cuda.synchronize(dev)
        e0 = energy_mj()
        t0 = time.perf_counter()
        if opt is None:
            for kind, _mb in perseus.one_f_one_b(1, 0, M):
                run(kind)
            torch.cuda.synchronize(dev)
            phase, version = "NO_PERSEUS", 0
        else:
            sched = opt.schedule
            phase, version = sched.phase, sched.version
            with opt.step():
                for kind, _mb in perseus.one_f_one_b(1, 0, M):
                    with opt.instruction(kind):
                        run(kind)
        t1 = time.perf_counter()
        e1 = energy_mj()
        rows.append({"label": label, "phase": phase, "version": version, "time_s": t1 - t0, "energy_j": (e1 - e0) / 1000})

    for _ in range(args.baseline_iterations):
        iteration("baseline", None)

    opt = perseus.PipelineFrequencyOptimizer(
        0, 0, 0, 0, args.device, 1, 1, 1, 1, args.server,
        job_id=f"gpu-e2e-{int(time.time())}", num_microbatches=M, sync="torch", gpu_model=torch.cuda.get_device_name(dev),
        blocking_power_w=80.0, unit_time_s=1e-3,
        profiling={"iterations_per_frequency": args.iterations_per_frequency, "frequency_stride": args.frequency_stride, "floor_frequency_mhz": args.floor_mhz},
    )
    if not opt.wait_ready(30):
        print("perseus: client not ready in 30 s", file=sys.stderr)
    deployed = 0
    for _ in range(args.max_iterations):
        label = "deployed" if opt.schedule.phase == "PHASE_DEPLOYED" else "perseus"
        iteration(label, opt)
        if label == "deployed":
            deployed += 1
            if deployed >= args.deployed_iterations:
                break
    opt.flush(10)
    st = opt.status()
    sched = opt.schedule
    with grpc.insecure_channel(args.server) as ch:
        js = optimizer_pb2_grpc.OptimizerStub(ch).GetJobStatus(optimizer_pb2.GetJobStatusRequest(job_id=opt.job_id), timeout=10)
    opt.close(10)

    (out / "gpu_e2e.csv").write_text("i,label,phase,version,time_s,energy_j\n" + "".join(
        f"{i},{r['label']},{r['phase']},{r['version']},{r['time_s']},{r['energy_j']}\n" for i, r in enumerate(rows)))
    base = [r for r in rows if r["label"] == "baseline"][2:]  # first two: warm-up
    dep = [r for r in rows if r["label"] == "deployed"][1:]  # first: the switch
    summary: dict = {
        "device": torch.cuda.get_device_name(dev), "microbatches": M, "forward_matmuls": args.forward_matmuls,
        "iterations": len(rows), "profiling_iterations": sum(1 for r in rows if r["label"] == "perseus"),
        "deployed_iterations": len(dep), "final_phase": sched.phase, "schedule_version": sched.version,
        "plan_clocks_mhz": sorted({f"{k[0]}:{k[1]}={v}" for k, v in sched.clocks.items()}),
        "expected_iteration_time_s": sched.expected_iteration_time_s, "expected_iteration_energy_j": sched.expected_iteration_energy_j,
        "measurements_received": st.measurements_received, "measurements_acked": st.measurements_acked,
        "predicted_saving_percent": js.predicted_saving_percent, "status_detail": js.detail,
    }
    if base and dep:
        bt, be = statistics.fmean(r["time_s"] for r in base), statistics.fmean(r["energy_j"] for r in base)
        dt, de = statistics.fmean(r["time_s"] for r in dep), statistics.fmean(r["energy_j"] for r in dep)
        summary.update({"baseline_time_s": bt, "baseline_energy_j": be, "deployed_time_s": dt, "deployed_energy_j": de,
                        "measured_saving_percent": 100 * (1 - de / be), "measured_slowdown_percent": 100 * (dt / bt - 1)})
    (out / "gpu_e2e.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    ok = sched.phase == "PHASE_DEPLOYED" and bool(dep) and summary.get("measured_slowdown_percent", 100) < 3.0
    print(f"perseus-gpu-e2e: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
