"""Fixtures of the client and emulator tests: real `perseus serve` processes that tests can kill
and restart on the same address (the shared ``perseus_server`` fixture is session-scoped and must
stay up, so fault-injection tests get their own server here)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO_ROOT, start_server, stop_server

A100_PROFILE = REPO_ROOT / "data" / "sosp24" / "stage_profile" / "gpt3-175b+a100_sxm_bf16.csv"
A100_CLOCKS = list(range(1410, 854, -15))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RestartableServer:
    """`perseus serve` on a fixed 127.0.0.1 port with a persistent state dir."""

    port: int
    state_dir: Path
    proc: subprocess.Popen[str] | None = None
    starts: int = 0
    extra_args: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc, _ = start_server(self.address, self.state_dir, self.extra_args)
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, streams break mid-flight."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the process hangs with its sockets open (a hung or partitioned service)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGCONT)
            stop_server(self.proc)


@pytest.fixture
def restartable_server() -> Iterator[RestartableServer]:
    """A server that is NOT started yet (tests decide when it comes up, dies, returns)."""
    with tempfile.TemporaryDirectory(prefix="perseus-client-") as tmp:
        srv = RestartableServer(port=free_port(), state_dir=Path(tmp))
        try:
            yield srv
        finally:
            srv.stop()


def wait_until(cond: Callable[[], bool], timeout_s: float, step: Callable[[], object] | None = None, interval_s: float = 0.05) -> bool:
    """Polls ``cond`` (running ``step`` between polls, e.g. a training iteration) until it holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        if step is not None:
            step()
        else:
            time.sleep(interval_s)
    return cond()


class WarningCounter(logging.Handler):
    """Counts the client's warnings and errors per message text (to check rate limiting)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def count(self, needle: str, level: int = logging.WARNING) -> int:
        """Lines at exactly ``level`` containing ``needle``."""
        return sum(1 for r in self.records if r.levelno == level and needle in r.getMessage())


@pytest.fixture
def client_logger() -> Iterator[tuple[logging.Logger, WarningCounter]]:
    logger = logging.getLogger(f"perseus.test.{os.getpid()}.{time.monotonic_ns()}")
    logger.propagate = False
    handler = WarningCounter()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
