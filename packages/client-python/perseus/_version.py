"""The suite version check: every Perseus service sends its version in the ``perseus-version``
response header; the client warns (once per service address) when the services' major version
differs from its own, since a different major means the wire contract or behaviour changed."""

from __future__ import annotations

import logging
import threading

import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

VERSION_HEADER = "perseus-version"

_warned: set[str] = set()
_lock = threading.Lock()


def major(version: str) -> str:
    """The major component of a semantic version (``"1.2.3"`` → ``"1"``)."""
    return version.split(".", 1)[0]


def check_versions(client: str, server: str | None, where: str, logger: logging.Logger) -> bool:
    """Warns once per ``where`` when ``server``'s major differs from ``client``'s; True when it warned."""
    if server is None or major(server) == major(client):
        return False
    with _lock:
        if where in _warned:
            return False
        _warned.add(where)
    logger.warning(
        "perseus: %s runs Perseus %s but this client is %s (different major version): upgrade one side; calls may fail or mean something else",
        where,
        server,
        client,
    )
    return True


async def check_server_version(channel: grpc.aio.Channel, where: str, logger: logging.Logger, timeout_s: float = 5.0) -> None:
    """Reads the service's version from a health check's response header and warns on a major
    mismatch. Best effort: any failure is left to the link's own calls to report."""
    from perseus import __version__

    try:
        call = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        metadata = await call.initial_metadata()
        await call
    except grpc.aio.AioRpcError:
        return
    server = None
    for key, value in metadata or ():
        if key == VERSION_HEADER:
            server = value if isinstance(value, str) else value.decode()
    check_versions(__version__, server, where, logger)
