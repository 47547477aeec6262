"""Real-GPU end to end: a Python trainer drives the agent (`perseus serve agent --agent-backend nvml`)
through the generated stubs, around real CUDA work, and the agent's per-instruction measurements are
compared with NVML's energy counter read directly in this process around the same instructions.

    python3 tools/device-check/agent_e2e.py --agent unix:/tmp/perseus-agent.sock --out DIR

Each instruction is a fixed number of bf16 matmuls (calibrated to ~0.2 s at the default clock), run
at clocks alternating between the fastest supported clock and a lower one, with an idle gap between
instructions. Writes e2e.json and e2e.csv under --out and prints a summary; exits 1 if a check fails.
Needs torch with CUDA, nvidia-ml-py (pynvml), grpcio and protobuf, and packages/client-python on
sys.path (this script adds it).
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import threading
import time
from pathlib import Path

from gpu_common import bf16_operands, nvml_energy_reader, use_client_package  # noqa: E402

use_client_package()

import grpc  # noqa: E402
import pynvml  # noqa: E402
import torch  # noqa: E402

from perseus.agent.v1 import agent_pb2, agent_pb2_grpc  # noqa: E402
from perseus.common.v1 import common_pb2  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--instructions", type=int, default=40)
    ap.add_argument("--low-clock", type=int, default=1200)
    ap.add_argument("--target-s", type=float, default=0.2)
    ap.add_argument("--gap-s", type=float, default=0.05)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    h, energy_mj = nvml_energy_reader(args.device)
    dev, a, b = bf16_operands(args.device, warmup=5)
    t = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize(dev)
    iters = max(10, round(args.target_s / ((time.perf_counter() - t) / 20)))

    requests: "queue.Queue[agent_pb2.SessionRequest | None]" = queue.Queue()

    def request_iter():
        while True:
            r = requests.get()
            if r is None:
                return
            yield r

    channel = grpc.insecure_channel(args.agent)
    stub = agent_pb2_grpc.GpuAgentStub(channel)
    responses = stub.OpenSession(request_iter())
    requests.put(agent_pb2.SessionRequest(open=agent_pb2.OpenSession(job_id="agent-e2e", rank=common_pb2.RankIdentity(rank=0), device_index=args.device)))
    opened = next(responses)
    if opened.WhichOneof("event") != "opened":
        print(f"agent refused the session: {opened}", file=sys.stderr)
        return 1
    clocks = list(opened.opened.device.supported_sm_clocks_mhz)
    high = clocks[0]
    low = min(clocks, key=lambda c: abs(c - args.low_clock))
    measurements: dict[int, agent_pb2.Measurement] = {}
    errors: list[str] = []
    done = threading.Event()

    def reader() -> None:
        try:
            for msg in responses:
                kind = msg.WhichOneof("event")
                if kind == "measurement":
                    measurements[msg.measurement.seq] = msg.measurement
                    if len(measurements) == args.instructions:
                        done.set()
                elif kind == "error":
                    errors.append(str(msg.error))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                errors.append(str(e))
        done.set()

    threading.Thread(target=reader, daemon=True).start()

    direct: dict[int, tuple[int, float, float, float]] = {}  # seq -> (clock, time_s, energy_j, hook_us)
    for seq in range(1, args.instructions + 1):
        mhz = high if seq % 2 == 1 else low
        torch.cuda.synchronize(dev)
        t0 = time.monotonic_ns()
        e0 = energy_mj()
        h0 = time.perf_counter_ns()
        requests.put(agent_pb2.SessionRequest(begin=agent_pb2.Begin(seq=seq, instruction=common_pb2.INSTRUCTION_KIND_FORWARD, microbatch=seq, frequency_mhz=mhz, t_ns=t0)))
        hook_us = (time.perf_counter_ns() - h0) / 1000
        for _ in range(iters):
            a @ b
        torch.cuda.synchronize(dev)
        t1 = time.monotonic_ns()
        e1 = energy_mj()
        requests.put(agent_pb2.SessionRequest(end=agent_pb2.End(seq=seq, t_ns=t1)))
        direct[seq] = (mhz, (t1 - t0) / 1e9, (e1 - e0) / 1000, hook_us)
        time.sleep(args.gap_s)
    done.wait(30)
    requests.put(None)
    time.sleep(1.0)  # the agent resets the clock when the stream ends
    locked_after = 0
    try:
        locked_after = pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)
    except pynvml.NVMLError:
        pass
    channel.close()

    rows = []
    for seq, (mhz, t_s, e_j, hook_us) in sorted(direct.items()):
        m = measurements.get(seq)
        rows.append({"seq": seq, "clock_mhz": mhz, "applied_mhz": m.frequency_applied_mhz if m else None, "time_s": t_s, "direct_energy_j": e_j,
                     "agent_time_s": m.time_s if m else None, "agent_energy_j": m.energy_j if m else None, "hook_us": hook_us})
    (out / "e2e.csv").write_text("seq,clock_mhz,applied_mhz,time_s,direct_energy_j,agent_time_s,agent_energy_j\n" + "".join(
        f"{r['seq']},{r['clock_mhz']},{r['applied_mhz']},{r['time_s']},{r['direct_energy_j']},{r['agent_time_s']},{r['agent_energy_j']}\n" for r in rows))
    steady = [r for r in rows if r["seq"] > 2 and r["agent_energy_j"] is not None]
    summary: dict = {"device": torch.cuda.get_device_name(dev), "matmuls_per_instruction": iters, "instructions": args.instructions,
                     "measured": len(measurements), "errors": errors, "clocks": [high, low], "sm_clock_after_stream_end_mhz": locked_after}
    for mhz in (high, low):
        rs = [r for r in steady if r["clock_mhz"] == mhz]
        if not rs:
            continue
        summary[f"at_{mhz}"] = {
            "n": len(rs),
            "time_s_mean": statistics.fmean(r["time_s"] for r in rs),
            "direct_energy_j_mean": statistics.fmean(r["direct_energy_j"] for r in rs),
            "agent_energy_j_mean": statistics.fmean(r["agent_energy_j"] for r in rs),
            "agent_over_direct_worst": max(abs(r["agent_energy_j"] / r["direct_energy_j"] - 1) for r in rs),
            "applied_ok": all(r["applied_mhz"] == mhz for r in rs),
        }
    total_direct = sum(r["direct_energy_j"] for r in steady)
    total_agent = sum(r["agent_energy_j"] for r in steady)
    summary["agent_over_direct_total"] = total_agent / total_direct if total_direct else None
    summary["hook_us_median"] = statistics.median(r["hook_us"] for r in rows)
    (out / "e2e.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    ok = (not errors and len(measurements) == args.instructions and all(summary.get(f"at_{c}", {}).get("applied_ok") for c in (high, low))
          and summary["agent_over_direct_total"] is not None and abs(summary["agent_over_direct_total"] - 1) < 0.05)
    print(f"agent-e2e: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
