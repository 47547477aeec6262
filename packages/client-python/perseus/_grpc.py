"""gRPC plumbing shared by the client's three links: channels (TLS, tokens), status codes, the loop."""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.rpc import error_details_pb2, status_pb2

GRPC_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]

PERMANENT_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
"""Answers that retrying cannot change: the request, the job or the credentials are wrong. Every
other failure (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, a broken stream, ...) is an outage: retried
with backoff."""

_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def status_code(number: int) -> grpc.StatusCode:
    """The :class:`grpc.StatusCode` of a numeric code carried in a message (``UNKNOWN`` if none)."""
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def error_code(err: BaseException) -> grpc.StatusCode | None:
    """The status code of a failed RPC, or None for any other exception."""
    if isinstance(err, grpc.aio.AioRpcError):
        return err.code()
    return None


def describe(err: BaseException) -> str:
    """A short text for a log line: the code's name, and the server's message unless it is an outage."""
    if isinstance(err, grpc.aio.AioRpcError):
        code = err.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return code.name
        return f"{code.name}: {err.details()}"
    return f"{type(err).__name__}: {err}"


def field_violations(err: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """The ``google.rpc.BadRequest`` field violations in a failed call's trailers."""
    out: list[tuple[str, str]] = []
    for key, value in err.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                out.extend((v.field, v.description) for v in bad.field_violations)
    return out


@dataclass(frozen=True)
class LinkSecurity:
    """How one link authenticates: TLS (server certificate checked against ``root_certificates``,
    or the system's roots when None; optional client certificate for mTLS) and a bearer token sent
    as ``authorization: Bearer <token>`` on every call."""

    tls: bool = False
    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    token: str = ""


_TLS_SCHEMES = ("grpcs://", "https://")
_PLAIN_SCHEMES = ("grpc://", "http://", "dns:///")


def split_url(url: str) -> tuple[str, bool]:
    """``(target, tls)``: strips a ``grpc://``/``http://`` prefix (Zeus compatibility) or a
    ``grpcs://``/``https://`` prefix, which asks for TLS."""
    for prefix in _TLS_SCHEMES:
        if url.startswith(prefix):
            return url[len(prefix) :].rstrip("/"), True
    for prefix in _PLAIN_SCHEMES:
        if url.startswith(prefix):
            return url[len(prefix) :].rstrip("/"), False
    return url, False


def open_channel(url: str, security: LinkSecurity) -> grpc.aio.Channel:
    """An asyncio channel to ``url`` with the link's TLS (the token goes with each call, see
    :attr:`perseus._link.Link.metadata`)."""
    target, tls_by_scheme = split_url(url)
    if security.tls or tls_by_scheme:
        creds = grpc.ssl_channel_credentials(security.root_certificates, security.private_key, security.certificate_chain)
        return grpc.aio.secure_channel(target, creds, options=GRPC_OPTIONS)
    return grpc.aio.insecure_channel(target, options=GRPC_OPTIONS)


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """``event.wait()`` with a timeout. Not ``asyncio.wait_for``: on Python < 3.12 it can swallow a
    cancellation that races with the event being set, which would keep a link alive after close()."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout_s)
    finally:
        if not waiter.done():
            waiter.cancel()
    return bool(done)


_SHARED_LOOP: asyncio.AbstractEventLoop | None = None
_SHARED_LOOP_LOCK = threading.Lock()
_SHARED_LOOP_PID = 0


def shared_loop() -> asyncio.AbstractEventLoop:
    """The process's one Perseus I/O event loop, on a daemon thread ("perseus-io").

    Every client of the process runs its links here. grpc.aio binds its completion-queue poller to
    the first loop that uses it, so one long-lived loop per process is also what grpc expects; a
    forked child gets its own.
    """
    global _SHARED_LOOP, _SHARED_LOOP_PID
    with _SHARED_LOOP_LOCK:
        if _SHARED_LOOP is None or os.getpid() != _SHARED_LOOP_PID:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name="perseus-io", daemon=True).start()
            ready.wait(10)
            _SHARED_LOOP, _SHARED_LOOP_PID = loop, os.getpid()
        return _SHARED_LOOP
