"""Demo benchmark: predicted vs emulated energy per phase, and wall time (issue 7).

Runs the one-command demo (tools/demo.sh → perseus demo: services in one process, emulated
GPT-3 175B pipeline on simulated A100 SXM GPUs) and prints one JSON line per phase and a total.

    .venv/bin/python tools/bench/client/demo_energy.py [extra perseus demo args]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="perseus-demo-bench-") as tmp:
        t0 = time.monotonic()
        proc = subprocess.run(["bash", str(ROOT / "tools" / "demo.sh"), "--out", tmp, *sys.argv[1:]], cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            print(proc.stderr[-4000:], file=sys.stderr)
            return proc.returncode
        s = json.loads((Path(tmp) / "summary.json").read_text())
    for p in s["phases"]:
        gap = None
        if p["saving_percent"] is not None and p["predicted_saving_percent"] is not None:
            gap = round(abs(p["saving_percent"] - p["predicted_saving_percent"]), 2)
        print(json.dumps({
            "bench": "demo-phase", "phase": p["phase"], "iterations": p["iterations"],
            "pipelines_compared": p["compared_pipelines"],
            "energy_per_iteration_j": None if p["compared_energy_j"] is None else round(p["compared_energy_j"], 1),
            "predicted_energy_per_iteration_j": None if p["predicted_energy_j"] is None else round(p["predicted_energy_j"], 1),
            "saving_percent": None if p["saving_percent"] is None else round(p["saving_percent"], 2),
            "predicted_saving_percent": None if p["predicted_saving_percent"] is None else round(p["predicted_saving_percent"], 2),
            "gap_pp": gap,
            "left_out_disturbed": p.get("disturbed", 0),
        }))
    print(json.dumps({
        "bench": "demo-total", "emulated": True, "wall_time_s": round(wall, 1), "driver_wall_time_s": s["wall_time_s"],
        "max_saving_gap_pp": None if s["max_saving_gap_pp"] is None else round(s["max_saving_gap_pp"], 2),
        "targets": {"wall_time_s": 180, "gap_pp": 2},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
