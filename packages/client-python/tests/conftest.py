"""Shared pytest fixtures: real TypeScript Perseus servers started as subprocesses.

``perseus_server`` is parametrized over transports (TCP on 127.0.0.1 with port 0, and a Unix
socket in a temp dir) and hosts all three services in one process (``perseus serve``), with every
piece of state under a temp dir. Tests call it through the generated stubs in ``perseus.*.v1``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

pytest_plugins = ["fixtures_client"]

REPO_ROOT = Path(__file__).resolve().parents[3]
PERSEUS_BIN = REPO_ROOT / "bin" / "perseus"


@dataclass
class PerseusServer:
    """A running ``perseus serve`` child process and a channel to it."""

    transport: str
    address: str
    channel: grpc.Channel
    proc: subprocess.Popen[str]
    state_dir: Path


def server_env(state_dir: Path) -> dict[str, str]:
    """Environment that keeps every service's state inside ``state_dir``."""
    env = dict(os.environ)
    env.update(
        {
            "PERSEUS_LOG_LEVEL": "warn",
            "PERSEUS_AGENT_BACKEND": "simulated",
            "PERSEUS_AGENT_STATE_FILE": str(state_dir / "agent-state.json"),
            "PERSEUS_PROFILER_DATA_DIR": str(state_dir / "profiler"),
            "PERSEUS_OPTIMIZER_DATA_DIR": str(state_dir / "optimizer"),
        }
    )
    return env


def start_server(listen: str, state_dir: Path, args: list[str] | None = None, timeout_s: float = 60.0) -> tuple[subprocess.Popen[str], str]:
    """Starts ``perseus serve`` and waits for its ``{"event":"serving"}`` line; returns (proc, address)."""
    proc = subprocess.Popen(
        [str(PERSEUS_BIN), "serve", *(args or []), "--listen", listen],
        cwd=state_dir,
        env=server_env(state_dir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    found: dict[str, str] = {}
    ready = threading.Event()

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not ready.is_set():
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if isinstance(msg, dict) and msg.get("event") == "serving":
                    found["address"] = str(msg["address"])
                    ready.set()

    threading.Thread(target=read_stdout, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not ready.wait(0.1) and proc.poll() is None and time.monotonic() < deadline:
        pass
    if not ready.is_set():
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise RuntimeError(f"perseus serve did not start within {timeout_s}s: {err[-2000:]}")
    return proc, found["address"]


def stop_server(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session", params=["tcp", "uds"])
def perseus_server(request: pytest.FixtureRequest) -> Iterator[PerseusServer]:
    """All three services in one ``perseus serve`` process, over TCP or a Unix socket."""
    transport: str = request.param
    with tempfile.TemporaryDirectory(prefix=f"perseus-{transport}-") as tmp:
        state_dir = Path(tmp)
        listen = "127.0.0.1:0" if transport == "tcp" else f"unix:{state_dir / 'perseus.sock'}"
        proc, address = start_server(listen, state_dir)
        channel = grpc.insecure_channel(address)
        try:
            grpc.channel_ready_future(channel).result(timeout=30)
            yield PerseusServer(transport, address, channel, proc, state_dir)
        finally:
            channel.close()
            stop_server(proc)


def field_violations(err: grpc.RpcError) -> list[tuple[str, str]]:
    """The google.rpc.BadRequest field violations of a failed call, as (field, description)."""
    status = rpc_status.from_call(err)
    out: list[tuple[str, str]] = []
    if status is None:
        return out
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            out.extend((v.field, v.description) for v in br.field_violations)
    return out


def violated_fields(err: grpc.RpcError) -> list[str]:
    """Just the field paths of :func:`field_violations`."""
    return [f for f, _ in field_violations(err)]
