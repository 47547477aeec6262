"""Sustained ingest into the profiler from Python clients using the generated stubs (issue 5).

Starts ``bin/perseus serve profiler`` (SQLite store, sync=full by default) on loopback, registers a
1,024-GPU GPT-3-shaped job, and runs N client streams from N threads of this process; a measurement
counts once its batch is acknowledged (= durably committed). Prints one JSON line.

    .venv/bin/python tools/bench/profiler/python_ingest.py [--duration-s 30] [--streams 8] [--batch 2000] [--window 4] [--sync full]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "packages" / "client-python"))

import grpc  # noqa: E402

from perseus.common.v1 import common_pb2  # noqa: E402
from perseus.profiler.v1 import profiler_pb2, profiler_pb2_grpc  # noqa: E402

STAGES, DP, TP, MICROBATCHES = 8, 16, 8, 96
FREQS = [1410 - 15 * i for i in range(38)]  # the A100's clocks, swept from the top
WINDOW_ITERATIONS = 20  # iterations of one stream per clock
PER_ITERATION = STAGES * TP * MICROBATCHES
FWD, BWD = common_pb2.INSTRUCTION_KIND_FORWARD, common_pb2.INSTRUCTION_KIND_BACKWARD


def start_server(data_dir: str, sync: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(REPO / "bin" / "perseus"), "serve", "profiler", "--listen", "127.0.0.1:0", "--profiler-data-dir", data_dir, "--profiler-sync", sync, "--log-level", "warn"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("event") == "serving":
            return proc, str(msg["address"])
    proc.kill()
    raise RuntimeError("profiler did not start")


def make_batch(job_id: str, stream: int, seq: int, size: int) -> profiler_pb2.MeasurementBatch:
    batch = profiler_pb2.MeasurementBatch(batch_id=f"s{stream}-{seq}", job_id=job_id)
    add = batch.measurements.add
    dp = stream % DP
    for i in range(size):
        n = seq * size + i
        iteration = (n // PER_ITERATION) * 8 + stream // DP
        r = n % PER_ITERATION
        stage = r // (TP * MICROBATCHES)
        tp = (r // MICROBATCHES) % TP
        m = add(
            instruction=FWD if n & 1 == 0 else BWD,
            microbatch=r % MICROBATCHES,
            frequency_mhz=FREQS[(n // PER_ITERATION // WINDOW_ITERATIONS) % len(FREQS)],
            time_s=0.05 + 0.001 * (n % 7),
            energy_j=20 + 0.1 * (n % 11),
            iteration=iteration,
        )
        rk = m.rank
        rk.rank = (dp * STAGES + stage) * TP + tp
        rk.dp_rank = dp
        rk.pp_rank = stage
        rk.tp_rank = tp
    return batch


def run_stream(stub: profiler_pb2_grpc.ProfilerStub, job_id: str, stream: int, size: int, window: int, deadline: float, out: dict[str, int]) -> None:
    slots = threading.Semaphore(window)

    def batches():  # type: ignore[no-untyped-def]
        seq = 0
        while time.time() < deadline:
            slots.acquire()
            yield make_batch(job_id, stream, seq, size)
            seq += 1

    for ack in stub.ReportMeasurements(batches()):
        slots.release()
        if ack.error.code:
            out["errors"] += 1
        else:
            out["acked"] += ack.stored_count


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--duration-s", type=float, default=30)
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--batch", type=int, default=2000)
    p.add_argument("--window", type=int, default=4)
    p.add_argument("--sync", default="full")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="perseus-bench-py-") as tmp:
        proc, address = start_server(tmp, a.sync)
        channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 16 * 1024 * 1024)])
        try:
            stub = profiler_pb2_grpc.ProfilerStub(channel)
            stub.RegisterJob(
                profiler_pb2.RegisterJobRequest(
                    job_id="pybench",
                    pipeline=common_pb2.PipelineSpec(schedule=common_pb2.SCHEDULE_KIND_1F1B, num_stages=STAGES, num_microbatches=MICROBATCHES),
                    dp_degree=DP,
                    tp_degree=TP,
                    supported_frequencies_mhz=FREQS,
                ),
                timeout=30,
            )
            results = [{"acked": 0, "errors": 0} for _ in range(a.streams)]
            t0 = time.time()
            deadline = t0 + a.duration_s
            threads = [threading.Thread(target=run_stream, args=(stub, "pybench", i, a.batch, a.window, deadline, results[i])) for i in range(a.streams)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.time() - t0
            acked = sum(r["acked"] for r in results)
            # One client process cannot build protobuf messages faster than its GIL allows; also
            # report what building them costs so the figure can be read as client- or server-bound.
            b0 = time.perf_counter()
            make_batch("x", 0, 0, a.batch)
            build_us = (time.perf_counter() - b0) / a.batch * 1e6
            print(
                json.dumps(
                    {
                        "bench": "profiler-ingest-python",
                        "streams": a.streams,
                        "batch": a.batch,
                        "window": a.window,
                        "sync": a.sync,
                        "duration_s": round(elapsed, 1),
                        "acked_measurements": acked,
                        "measurements_per_s": round(acked / elapsed),
                        "errors": sum(r["errors"] for r in results),
                        "client_build_us_per_measurement": round(build_us, 2),
                        "client_processes": 1,
                        "cpus": os.cpu_count(),
                    }
                )
            )
        finally:
            channel.close()
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
