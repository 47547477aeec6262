"""A process that escaped its Slurm job and still holds a GPU: what the epilog must clean up.

    setsid -f python tools/slurm/escaped_holder.py --job-id slurm-42 --device 7 --clock 1005 --run-dir DIR

Opens an agent session on ``--device`` for ``--job-id``, locks the SM clock at ``--clock`` MHz, writes
``<run-dir>/holder-ready``, then keeps the session open until the agent ends it, and writes the
stream's final status code to ``<run-dir>/holder-ended`` (``ABORTED`` after an admin reset). Started
with ``setsid -f`` from a batch script, it is re-parented to init: Slurm's proctrack/linuxproc,
which follows the job's process tree, no longer sees it, so ``scancel`` leaves it running — like a
daemonised data loader or a hung child on a cluster without cgroup tracking.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
from pathlib import Path

import grpc
from perseus.agent.v1 import agent_pb2, agent_pb2_grpc
from perseus.common.v1 import common_pb2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--job-id", required=True)
    ap.add_argument("--device", type=int, required=True)
    ap.add_argument("--clock", type=int, required=True, help="SM clock to lock, MHz")
    ap.add_argument("--run-dir", required=True)
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    channel = grpc.insecure_channel(os.environ["PERSEUS_AGENT_URL"])
    stub = agent_pb2_grpc.GpuAgentStub(channel)
    outbox: queue.Queue[agent_pb2.SessionRequest | None] = queue.Queue()
    outbox.put(
        agent_pb2.SessionRequest(
            open=agent_pb2.OpenSession(
                job_id=args.job_id, rank=common_pb2.RankIdentity(rank=0), device_index=args.device, lease_ttl_s=3600
            )
        )
    )

    def requests():
        while (msg := outbox.get()) is not None:
            yield msg

    responses = stub.OpenSession(requests())
    code = "OK"
    try:
        for resp in responses:
            if resp.HasField("opened"):
                stub.SetClocks(
                    agent_pb2.SetClocksRequest(lease_id=resp.opened.lease_id, device_index=args.device, sm_clock_mhz=args.clock),
                    timeout=10,
                )
                (run_dir / "holder-ready").write_text(f"{os.getpid()}\n")
    except grpc.RpcError as err:
        code = err.code().name
    (run_dir / "holder-ended").write_text(f"{code}\n")
    outbox.put(None)
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
