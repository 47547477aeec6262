"""examples/pytorch_pipeline.py: same losses bit for bit with and without Perseus; the agent
measured every forward and backward of every rank, in 1F1B order."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import perseus
from conftest import REPO_ROOT
from fixtures_client import RestartableServer

EXAMPLE = REPO_ROOT / "examples" / "pytorch_pipeline.py"
ITERATIONS, M = 4, 4

if importlib.util.find_spec("torch") is None:
    _why = "torch is not importable from this Python: run tools/install-torch.sh (Debian python3-torch, CPU)"
    if os.environ.get("CI"):
        # CI installs torch (.ci/run); a missing torch there is a broken setup, not a reason to skip.
        pytest.fail(_why, pytrace=False)
    pytest.skip(f"{_why} to enable this test", allow_module_level=True)


def run_example(out: Path, server: str = "", job_id: str | None = None) -> dict[str, Any]:
    args = [sys.executable, str(EXAMPLE), "--out", str(out), "--iterations", str(ITERATIONS), "--microbatches", str(M)]
    if job_id is not None:
        args += ["--job-id", job_id]
    if server:
        args += ["--server", server]
    env = {k: v for k, v in os.environ.items() if k not in ("PERSEUS_JOB_ID", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID")}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=REPO_ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_losses_are_bit_identical_and_every_instruction_reaches_the_agent(restartable_server: RestartableServer, tmp_path: Path) -> None:
    restartable_server.start()
    plain = run_example(tmp_path / "plain.json")
    # No --job-id: the example takes the client's job identity; without a launcher that is a fresh
    # id rank 0 draws and broadcasts (issue 12: a fixed default id let a rerun apply an old job's plan).
    with_perseus = run_example(tmp_path / "perseus.json", server=restartable_server.address)
    job_ids = {rank["job_id"] for rank in with_perseus["ranks"]}
    assert len(job_ids) == 1, job_ids
    assert re.fullmatch(r"perseus-[0-9a-f]{16}", job_ids.pop())
    assert len(plain["losses_hex"]) == ITERATIONS
    # float.hex() of every iteration's loss: equal strings = equal bits.
    assert with_perseus["losses_hex"] == plain["losses_hex"]

    for rank in with_perseus["ranks"]:
        st = rank["status"]
        assert st["agent_connected"] is True
        assert st["iterations_reported"] == ITERATIONS
        got = [(m["iteration"], m["instruction"], m["microbatch"]) for m in rank["measurements"]]
        want = [(it, kind, mb) for it in range(1, ITERATIONS + 1) for kind, mb in perseus.one_f_one_b(2, rank["stage"], M)]
        assert got == want
        seqs = [m["seq"] for m in rank["measurements"]]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        # Default clocks (0) until every rank registered, then the sweep's clocks; the agent applied them.
        assert {m["frequency_applied_mhz"] for m in rank["measurements"]} <= {0, *range(1410, 854, -15)}
        assert all(m["time_s"] > 0 for m in rank["measurements"])
