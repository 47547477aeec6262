"""Fixed matmul workload for the device check: warms up, calibrates the number of bf16 matmuls to
about --target-s seconds at the current (default) clock, then for every "run" line on stdin runs
exactly that many, synchronises, and prints {"time_s": ...}. The work is fixed across clocks; the
parent locks a clock and reads the energy counter around each run. Exits on EOF."""

import json
import sys
import time

import torch

from gpu_common import bf16_operands

n = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
target_s = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
dev, a, b = bf16_operands(int(sys.argv[3]) if len(sys.argv) > 3 else 0, n=n, warmup=5)
t0 = time.perf_counter()
for _ in range(20):
    a @ b
torch.cuda.synchronize(dev)
iters = max(20, round(target_s / ((time.perf_counter() - t0) / 20)))
print(json.dumps({"ready": True, "n": n, "iters": iters, "device": torch.cuda.get_device_name(dev)}), flush=True)
for line in sys.stdin:
    if line.strip() != "run":
        continue
    torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize(dev)
    print(json.dumps({"time_s": time.perf_counter() - t0, "tflops": 2 * n**3 * iters / (time.perf_counter() - t0) / 1e12}), flush=True)
