"""A real 2-stage PyTorch pipeline (CPU, torch.distributed gloo) with the Perseus hooks.

Stage 0 holds the first layers of a small MLP, stage 1 the rest and the loss. Each iteration pushes
M microbatches through a synchronous 1F1B schedule with point-to-point sends of activations and
gradients, then takes an SGD step. The Perseus hooks wrap every forward and backward computation;
they only timestamp and ask the GPU agent for clocks, so the model math — and the loss, bit for
bit — is the same with and without them.

    # with Perseus (all services in one process: bin/perseus serve --listen 127.0.0.1:50051)
    python examples/pytorch_pipeline.py --server 127.0.0.1:50051 --out run.json
    # without
    python examples/pytorch_pipeline.py --out run-plain.json

The output JSON holds the per-iteration losses and, with Perseus, the job id and every measurement
the agent returned to each rank (instruction, microbatch, clock, time, energy) in order.

The job id is the client's own job identity unless ``--job-id`` is given: ``PERSEUS_JOB_ID``,
torchrun's ``TORCHELASTIC_RUN_ID``, Slurm's ``SLURM_JOB_ID``, else a fresh id rank 0 draws and
broadcasts over torch.distributed — so two runs never share a job (and its profile and plans) by
accident.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

NUM_STAGES = 2


def build_stage(stage: int) -> nn.Module:
    torch.manual_seed(1234 + stage)  # each stage's init is independent of the other's
    if stage == 0:
        return nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 32), nn.Tanh())
    return nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))


def batch(iteration: int, microbatch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(iteration * 1000 + microbatch)
    x = torch.randn(size, 16, generator=g)
    y = torch.sin(x.sum(dim=1, keepdim=True))
    return x, y


def one_f_one_b(stage: int, m: int) -> list[tuple[str, int]]:
    warmup = min(NUM_STAGES - stage, m)
    order = [("forward", i) for i in range(warmup)]
    f, b = warmup, 0
    while b < m:
        order.append(("backward", b))
        b += 1
        if f < m:
            order.append(("forward", f))
            f += 1
    return order


def run_rank(rank: int, args: argparse.Namespace, port: int, out_path: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    dist.init_process_group("gloo", rank=rank, world_size=NUM_STAGES)
    stage = rank
    model = build_stage(stage)
    opt_sgd = torch.optim.SGD(model.parameters(), lr=args.lr)
    m = args.microbatches
    perseus_opt: Optional[Any] = None
    if args.server:
        import perseus

        perseus_opt = perseus.PipelineFrequencyOptimizer(
            rank=rank, dp_rank=0, pp_rank=stage, tp_rank=0, device_id=rank,
            dp_degree=1, pp_degree=NUM_STAGES, tp_degree=1, world_size=NUM_STAGES,
            server_url=args.server, job_id=args.job_id, num_microbatches=m,
            sync="torch",  # no-op on CPU; torch.cuda.synchronize on a GPU
            gpu_model="A100-SXM4", blocking_power_w=83.64, supported_frequencies_mhz=args.clocks,
        )
        # Optional: without it the first instructions run (unmeasured) before the agent session is up.
        perseus_opt.wait_ready(timeout_s=30)

    def begin(kind: str) -> None:
        if perseus_opt is not None:
            perseus_opt.on_instruction_begin(kind)

    def end(kind: str) -> None:
        if perseus_opt is not None:
            perseus_opt.on_instruction_end(kind)

    losses: list[float] = []
    for it in range(1, args.iterations + 1):
        if perseus_opt is not None:
            perseus_opt.on_step_begin()
        opt_sgd.zero_grad(set_to_none=True)
        saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        pending: list[Any] = []
        iter_loss = torch.zeros(())
        for kind, mb in one_f_one_b(stage, m):
            if kind == "forward":
                if stage == 0:
                    x, _ = batch(it, mb, args.microbatch_size)
                else:
                    x = torch.empty(args.microbatch_size, 32)
                    dist.recv(x, src=0)
                    x.requires_grad_(True)
                begin("forward")
                out = model(x)
                if stage == NUM_STAGES - 1:
                    _, y = batch(it, mb, args.microbatch_size)
                    out = nn.functional.mse_loss(out, y) / m
                    iter_loss = iter_loss + out.detach()
                end("forward")
                saved[mb] = (x, out)
                if stage == 0:
                    pending.append(dist.isend(out.detach(), dst=1))
            else:
                x, out = saved.pop(mb)
                if stage == 0:
                    grad = torch.empty_like(out)
                    dist.recv(grad, src=1)
                    begin("backward")
                    out.backward(grad)
                    end("backward")
                else:
                    begin("backward")
                    out.backward()
                    end("backward")
                    assert x.grad is not None
                    pending.append(dist.isend(x.grad, dst=0))
        for req in pending:
            req.wait()
        opt_sgd.step()
        if perseus_opt is not None:
            perseus_opt.on_step_end()
        if stage == NUM_STAGES - 1:
            losses.append(float(iter_loss))

    result: dict[str, Any] = {"rank": rank, "stage": stage, "losses": losses, "losses_hex": [v.hex() for v in losses]}
    if perseus_opt is not None:
        perseus_opt.flush(timeout_s=10)
        st = perseus_opt.status()
        result["measurements"] = [
            {"iteration": r.iteration, "instruction": r.instruction, "microbatch": r.microbatch, "seq": r.seq,
             "frequency_applied_mhz": r.frequency_applied_mhz, "time_s": r.time_s, "energy_j": r.energy_j}
            for r in perseus_opt.measurements()
        ]
        result["job_id"] = perseus_opt.job_id
        result["status"] = {"agent_connected": st.agent_connected, "schedule_version": st.schedule_version, "phase": st.phase,
                            "measurements_received": st.measurements_received, "iterations_reported": st.iterations_reported}
        perseus_opt.close()
    Path(out_path).write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="", help="perseus serve address; empty = run without Perseus")
    ap.add_argument("--job-id", default=None, help="default: the client's job identity (PERSEUS_JOB_ID, TORCHELASTIC_RUN_ID, SLURM_JOB_ID, else a fresh id the ranks agree on)")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--microbatches", type=int, default=4)
    ap.add_argument("--microbatch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--clocks", type=int, nargs="*", default=list(range(1410, 854, -15)), help="SM clocks to register (no GPU here)")
    ap.add_argument("--out", required=True, help="JSON output (losses, measurements)")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = Path(args.out)
    parts = [str(out.with_suffix(f".rank{r}.json")) for r in range(NUM_STAGES)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=run_rank, args=(r, args, port, parts[r])) for r in range(NUM_STAGES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    codes = [p.exitcode for p in procs]
    if any(c != 0 for c in codes):
        print(f"ranks failed: exit codes {codes}", file=sys.stderr)
        sys.exit(1)
    ranks = [json.loads(Path(p).read_text()) for p in parts]
    for p in parts:
        Path(p).unlink()
    summary = {"losses": ranks[-1]["losses"], "losses_hex": ranks[-1]["losses_hex"], "ranks": ranks}
    out.write_text(json.dumps(summary, indent=1))
    print(json.dumps({"losses": summary["losses"]}))


if __name__ == "__main__":
    main()
