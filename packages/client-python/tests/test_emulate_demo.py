"""The demo driver end to end on a small job against the real services (the full demo is npm start)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fixtures_client import A100_PROFILE, RestartableServer
from perseus.emulate import demo


def test_small_demo_runs_every_phase_and_matches_the_planner(restartable_server: RestartableServer, tmp_path: Path) -> None:
    restartable_server.start()
    out = tmp_path / "out"
    rc = demo.main([
        "--server", restartable_server.address, "--profile", str(A100_PROFILE), "--out", str(out),
        "--job-id", "demo-small", "--stages", "2", "--dp", "2", "--microbatches", "3", "--window", "2",
        "--time-scale", "1", "--frequency-stride", "9", "--timeout", "150", "--quiet",
    ])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["emulated"] is True
    phases = {p["phase"]: p for p in summary["phases"]}
    assert list(phases) == ["baseline", "profiling", "planning", "intrinsic", "straggler", "extrinsic", "cleared"]
    for name in ("baseline", "profiling", "intrinsic", "straggler", "extrinsic", "cleared"):
        assert phases[name]["iterations"] >= 2, name
    f = summary["frontier"]
    assert f is not None and len(f["points"]) >= 1 and f["all_max_energy_j"] > 0
    # Baseline runs every clock at max: its time is the planner's all-max time (plus pipe latency).
    assert f["all_max_time_s"] * 0.99 <= phases["baseline"]["iteration_time_s"] <= f["all_max_time_s"] * 1.10
    # Intrinsic plan: no slower than all-max (within emulation latency), and saves energy.
    assert phases["intrinsic"]["iteration_time_s"] <= phases["baseline"]["iteration_time_s"] * 1.05
    assert phases["intrinsic"]["saving_percent"] > 0
    # A 1.2x straggler stretches every pipeline's iteration (they meet at the all-reduce).
    assert phases["straggler"]["iteration_time_s"] >= 1.10 * phases["baseline"]["iteration_time_s"]
    # Extrinsic plan: the other pipeline slows into the straggler's shadow and saves more.
    assert phases["extrinsic"]["saving_percent"] > phases["straggler"]["saving_percent"]
    for name in ("intrinsic", "straggler", "extrinsic", "cleared"):
        p = phases[name]
        assert abs(p["saving_percent"] - p["predicted_saving_percent"]) <= 3.0, (name, p)


def test_demo_without_straggler_reports_the_optimizer_detects_and_clears_a_straggler(restartable_server: RestartableServer, tmp_path: Path) -> None:
    """Data parallelism makes every pipeline's step equally long; the optimizer must still find the
    1.2x pipeline from the ranks' compute times, deploy the extrinsic plan and clear it."""
    restartable_server.start()
    out = tmp_path / "out"
    rc = demo.main([
        "--server", restartable_server.address, "--profile", str(A100_PROFILE), "--out", str(out),
        "--job-id", "demo-detect", "--stages", "2", "--dp", "2", "--microbatches", "3", "--window", "2",
        "--time-scale", "1", "--frequency-stride", "9", "--timeout", "150", "--quiet", "--detect", "--detect-within", "25",
    ])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    events = [e["event"] for e in summary["events"]]
    assert "straggler_reported" not in events and "straggler_cleared" not in events  # nobody told it
    assert summary["straggler_mode"] == "detected"
    assert 1 <= summary["detection_delay_iterations"] <= 25
    assert 1 <= summary["recovery_delay_iterations"] <= 25
    phases = {p["phase"]: p for p in summary["phases"]}
    for name in ("intrinsic", "extrinsic", "cleared"):
        assert phases[name]["iterations"] >= 2, name
    # The extrinsic plan is the one for a 1.2x straggler: the other pipeline targets its time.
    extrinsic = [r for r in summary["iterations"] if r["label"] == "extrinsic"]
    t_prime = {float(m) for r in extrinsic for m in re.findall(r"straggler dp=1 T'=([0-9.]+)s", r["reason"])}
    assert len(t_prime) == 1
    assert t_prime.pop() == pytest.approx(1.2 * phases["intrinsic"]["predicted_iteration_time_s"], rel=0.05)
    assert phases["extrinsic"]["saving_percent"] > phases["intrinsic"]["saving_percent"]
    assert abs(phases["extrinsic"]["saving_percent"] - phases["extrinsic"]["predicted_saving_percent"]) <= 2.0


def test_small_interleaved_demo_runs_every_phase_and_matches_the_planner(restartable_server: RestartableServer, tmp_path: Path) -> None:
    """Megatron-LM's interleaved 1F1B end to end: 2 GPUs × 2 chunks per pipeline (4 virtual stages)
    profiled online, planned, deployed with each instruction's chunk, and the straggler phases."""
    restartable_server.start()
    out = tmp_path / "out"
    rc = demo.main([
        "--server", restartable_server.address, "--profile", str(A100_PROFILE), "--out", str(out),
        "--job-id", "demo-interleaved", "--schedule", "interleaved", "--chunks", "2", "--stages", "2", "--dp", "2",
        "--microbatches", "2", "--window", "2", "--time-scale", "1", "--frequency-stride", "9", "--timeout", "150", "--quiet",
    ])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pipeline"] == {"stages": 2, "dp": 2, "microbatches": 2, "schedule": "interleaved", "chunks": 2}
    phases = {p["phase"]: p for p in summary["phases"]}
    for name in ("baseline", "profiling", "intrinsic", "extrinsic", "cleared"):
        assert phases[name]["iterations"] >= 2, (name, summary["table"])
    f = summary["frontier"]
    assert f["all_max_time_s"] * 0.99 <= phases["baseline"]["iteration_time_s"] <= f["all_max_time_s"] * 1.10, summary["table"]
    # Every rank ran 2·M·V instructions per iteration.
    assert all(len(freqs) == 8 for r in summary["iterations"] for freqs in r["frequencies_mhz"].values())
    # The extrinsic plan slows the other pipeline into the straggler's shadow: it saves more than the
    # intrinsic plan. (The straggler phase itself may be cut short: the optimizer can detect the
    # straggler before the demo reports it.)
    assert phases["extrinsic"]["saving_percent"] > phases["intrinsic"]["saving_percent"], summary["table"]
    for name in ("intrinsic", "straggler", "extrinsic", "cleared"):
        p = phases[name]
        if p["iterations"]:
            assert abs(p["saving_percent"] - p["predicted_saving_percent"]) <= 3.0, (name, summary["table"])
