"""Errors the client raises to the trainer."""

from __future__ import annotations

from collections.abc import Sequence

import grpc


class ConfigurationError(Exception):
    """A Perseus service rejected this client for a reason retrying cannot fix.

    Raised by :meth:`perseus.PipelineFrequencyOptimizer.wait_ready` when a service answered one of
    the permanent status codes (``INVALID_ARGUMENT``, ``FAILED_PRECONDITION``, ``NOT_FOUND``,
    ``PERMISSION_DENIED``, ``UNAUTHENTICATED``): a wrong job id or spec, a device leased by another
    job, a missing or unauthorised token. The link that got it stops (its clocks stay at the
    device's defaults); the other links go on. ``violations`` are the server's field violations
    (``google.rpc.BadRequest``) as ``(field, description)`` pairs.
    """

    def __init__(self, link: str, code: grpc.StatusCode, message: str, violations: Sequence[tuple[str, str]] = ()) -> None:
        self.link = link
        self.code = code
        self.message = message
        self.violations: tuple[tuple[str, str], ...] = tuple(violations)
        detail = "".join(f"; {f}: {d}" for f, d in self.violations)
        super().__init__(f"{link}: {code.name}: {message}{detail}")
