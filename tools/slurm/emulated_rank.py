"""One rank of the emulated pipeline-parallel training job, as Slurm launches it (``srun``).

    srun -O -n 8 python tools/slurm/emulated_rank.py --pp 4 --microbatches 4 --run-dir DIR

Everything about the rank's place comes from Slurm: ``SLURM_PROCID``, ``SLURM_NTASKS``,
``SLURM_LOCALID`` (the GPU), ``SLURM_JOB_ID``/``SLURM_STEP_ID`` (the job id ``slurm-<job>.<step>``);
Perseus needs only the service addresses (``PERSEUS_OPTIMIZER_URL``, ``PERSEUS_AGENT_URL``,
``PERSEUS_PROFILER_URL``) and the pipeline degree (the data-parallel degree follows from the world
size) — :meth:`perseus.PipelineFrequencyOptimizer.from_environment`. The rest describes the emulated
GPU (stage profile, blocking power) as a real job's hardware would. Instructions run in real time
(``--time-scale 1``): at 1,410 MHz an iteration of 4 GPT-3 175B stages with 4 microbatches takes
about a second.

Ranks talk over Unix sockets in ``--run-dir`` (no shared parent process, unlike
:mod:`perseus.emulate.trainer`): a stage receives its forward input from the stage below and its
gradient from the stage above, and after its last backward meets the same stage of the other
pipelines at a gradient all-reduce barrier. Each instruction sleeps the profile's time at the
clock the hooks asked the agent for (× the straggler slowdown read from
``<run-dir>/slowdown-dp<d>`` each iteration). Each rank appends one JSON line per iteration to
``<run-dir>/rank-<r>.jsonl`` once the client reported it (the agent's measured time and energy, the
plan it ran). ``<run-dir>/stop`` holding an iteration number stops every rank after it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from perseus import PipelineFrequencyOptimizer
from perseus.emulate.profile import load_profile
from perseus.emulate.trainer import _GpuClock
from perseus.launch import placement
from perseus.schedule import one_f_one_b

AUTH = b"perseus-emulated-slurm-job"


def _read_float(path: Path, default: float) -> float:
    try:
        return float(path.read_text().strip() or default)
    except (FileNotFoundError, ValueError):
        return default


class Links:
    """This rank's sockets: the neighbouring stages of its pipeline and its stage's all-reduce."""

    def __init__(self, run_dir: Path, rank: int, stage: int, dp_rank: int, pp: int, dp: int) -> None:
        self.dir = run_dir
        self.rank_of = lambda s, d: s * dp + d  # Megatron/DeepSpeed layout, tp = 1
        self.listener = Listener(str(run_dir / f"rank-{rank}.sock"), family="AF_UNIX", authkey=AUTH)
        self.prev: Connection | None = None  # stage - 1 (sends forward inputs, receives gradients)
        self.next: Connection | None = None
        self.peers: list[Connection] = []  # stage root (dp 0): the other pipelines' same stage
        self.root: Connection | None = None
        if stage > 0:
            self.prev = self._connect(self.rank_of(stage - 1, dp_rank), rank)
        if dp_rank > 0:
            self.root = self._connect(self.rank_of(stage, 0), rank)
        expected = (1 if stage < pp - 1 else 0) + (dp - 1 if dp_rank == 0 else 0)
        for _ in range(expected):
            conn = self.listener.accept()
            who = conn.recv()
            if who == self.rank_of(stage + 1, dp_rank):
                self.next = conn
            else:
                self.peers.append(conn)

    def _connect(self, to_rank: int, me: int) -> Connection:
        path = self.dir / f"rank-{to_rank}.sock"
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = Client(str(path), family="AF_UNIX", authkey=AUTH)
                conn.send(me)
                return conn
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def all_reduce(self) -> None:
        """The stage's gradient all-reduce: every pipeline waits for the slowest."""
        if self.root is not None:
            self.root.send("arrived")
            self.root.recv()
        else:
            for p in self.peers:
                p.recv()
            for p in self.peers:
                p.send("go")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pp", type=int, required=True, help="pipeline degree (stages)")
    ap.add_argument("--microbatches", type=int, default=4)
    ap.add_argument("--run-dir", required=True, help="shared folder: sockets, control files, records")
    ap.add_argument("--profile", required=True, help="stage profile of the emulated GPUs")
    # 1.0: the hooks' clock is the host's CLOCK_MONOTONIC, which the node's agent shares, so it maps
    # every timestamp exactly and its simulated GPUs integrate power over the instruction's own time.
    ap.add_argument("--time-scale", type=float, default=1.0, help="wall seconds per emulated GPU second")
    ap.add_argument("--blocking-power", type=float, default=83.64, help="W (A100 SXM, the paper's artifact)")
    ap.add_argument("--max-iterations", type=int, default=100_000)
    args = ap.parse_args(argv)

    # As in perseus.emulate.trainer: the client's I/O thread must not hold the GIL for the default
    # 5 ms while this rank's next instruction is due (it would show up as emulated GPU idle time).
    sys.setswitchinterval(0.0002)
    run_dir = Path(args.run_dir)
    profile = load_profile(args.profile)
    clock = _GpuClock(args.time_scale)
    opt = PipelineFrequencyOptimizer.from_environment(
        os.environ["PERSEUS_OPTIMIZER_URL"],
        pp_degree=args.pp,
        num_microbatches=args.microbatches,
        sync="none",
        gpu_model="A100-SXM4 (simulated)",
        supported_frequencies_mhz=profile.frequencies_mhz,
        blocking_power_w=args.blocking_power,
        profiling={"iterations_per_frequency": 2, "frequency_stride": 4},
        clock_ns=clock,
        warn_if_simulated=False,
        retry_max_s=1.0,
        batch_interval_s=0.25,
    )
    rank, stage, dp_rank = opt.rank, opt.pp_rank, opt.dp_rank
    dp = placement().world_size // args.pp
    links = Links(run_dir, rank, stage, dp_rank, args.pp, dp)
    order = one_f_one_b(args.pp, stage, args.microbatches)
    with open(run_dir / f"rank-{rank}.jsonl", "a", buffering=1) as out:
        local: dict[int, dict[str, Any]] = {}

        def write_reported(final: bool = False) -> None:
            reported = {r.iteration: r for r in opt.iterations()}
            for it in sorted(local):
                rep = reported.get(it)
                if rep is None and not final:
                    continue
                rec = local.pop(it)
                if rep is not None:
                    rec.update(time_s=rep.time_s, energy_j=rep.energy_j, busy_s=rep.busy_s, measured_instructions=rep.measured_instructions)
                out.write(json.dumps(rec) + "\n")

        iteration = 0
        try:
            while iteration < args.max_iterations:
                iteration += 1
                if iteration > _read_float(run_dir / "stop", float("inf")):
                    break
                slowdown = _read_float(run_dir / f"slowdown-dp{dp_rank}", 1.0)
                opt.on_step_begin(iteration)
                sched = opt._current  # the plan this iteration runs (fixed at step begin)
                for kind, mb in order:
                    if kind == "forward" and links.prev is not None:
                        links.prev.recv()
                    elif kind == "backward" and links.next is not None:
                        links.next.recv()
                    freq = opt.on_instruction_begin(kind) or profile.max_frequency_mhz
                    clock.run(clock.last, profile.time_s(stage, kind, freq) * slowdown)
                    opt.on_instruction_end(kind)
                    if kind == "forward" and links.next is not None:
                        links.next.send(mb)
                    elif kind == "backward" and links.prev is not None:
                        links.prev.send(mb)
                links.all_reduce()
                opt.on_step_end()
                local[iteration] = {
                    "rank": rank, "stage": stage, "dp_rank": dp_rank, "iteration": iteration, "job_id": opt.job_id,
                    "slowdown": slowdown, "schedule_version": sched.version if sched else 0,
                    "phase": sched.phase if sched else "", "reason": sched.reason if sched else "",
                    "expected_iteration_energy_j": sched.expected_iteration_energy_j if sched else 0.0,
                    "expected_iteration_time_s": sched.expected_iteration_time_s if sched else 0.0,
                    "blocking_power_w": args.blocking_power,
                }
                write_reported()
        except (EOFError, ConnectionError) as err:
            print(f"rank {rank}: a neighbour left ({err!r}); stopping", file=sys.stderr)
        finally:
            opt.flush(timeout_s=3.0)
            write_reported(final=True)
            opt.close(timeout_s=3.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
