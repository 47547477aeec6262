"""One reconnecting link to a service: the connect / serve / back off / warn loop, written once.

A link (agent, optimizer, profiler) subclasses :class:`Link` and implements :meth:`Link.serve`: use
the channel until the connection breaks (raise) or the client stops (return). The loop here opens
the channel, warns once per outage (rate-limited), logs the recovery, backs off exponentially up to
``retry_max_s`` between attempts, and stops the link for good on a permanent status code
(:data:`perseus._grpc.PERMANENT_CODES`): a wrong job, spec or token does not get better by retrying.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc
import grpc.aio

from perseus._grpc import PERMANENT_CODES, LinkSecurity, describe, field_violations, open_channel, wait_event
from perseus._records import LinkFailure
from perseus._version import check_server_version
from perseus._warn import RateLimitedWarner

INITIAL_BACKOFF_S = 0.1


class Rejected(Exception):
    """A service refused the link inside a stream (not as the RPC's status), with a status code."""

    def __init__(self, code: grpc.StatusCode, message: str, violations: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.violations = violations


def failure_of(link: str, err: BaseException) -> LinkFailure | None:
    """The permanent failure ``err`` means, or None for an outage (retried)."""
    if isinstance(err, grpc.aio.AioRpcError) and err.code() in PERMANENT_CODES:
        return LinkFailure(link, err.code().name, err.details() or "", tuple(field_violations(err)))
    if isinstance(err, Rejected) and err.code in PERMANENT_CODES:
        return LinkFailure(link, err.code.name, err.message, err.violations)
    return None


class Link:
    """Base of the three links. ``up`` is True while the link is connected and serving."""

    name = "link"
    outage = "%s unavailable (%s); retrying"
    """Warning for an outage: ``%s`` = url, ``%s`` = what failed."""
    recovery = "%s reachable again"

    def __init__(
        self,
        url: str,
        security: LinkSecurity,
        *,
        retry_max_s: float,
        warner: RateLimitedWarner,
        logger: logging.Logger,
        stop: asyncio.Event,
        on_failure: Callable[[LinkFailure], None],
    ) -> None:
        self.url = url
        self.security = security
        self.retry_max_s = retry_max_s
        self.warner = warner
        self.logger = logger
        self.stop = stop
        self.on_failure = on_failure
        self.up = False
        self.failure: LinkFailure | None = None
        self.metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {security.token}"),) if security.token else ()
        """Sent with every call of the link: the bearer token, if any."""
        self._backoff = INITIAL_BACKOFF_S

    async def serve(self, channel: grpc.aio.Channel) -> None:
        """Uses ``channel`` until it breaks (raise) or :attr:`stop` is set (return)."""
        raise NotImplementedError

    def connected(self) -> None:
        """Called by :meth:`serve` once the link works: resets the backoff, logs a recovery."""
        self.up = True
        self._backoff = INITIAL_BACKOFF_S
        self.warner.recovered(self.name, "perseus: " + self.recovery, self.url)

    def permanent(self, err: BaseException) -> LinkFailure | None:
        """The failure that stops the link for good, or None to retry (default: a permanent code)."""
        return failure_of(self.name, err)

    def is_expected(self, err: BaseException) -> bool:
        """A transient failure not worth a warning (e.g. rank 0 has not registered the job yet)."""
        return False

    def warn_transient(self, err: BaseException) -> None:
        """The (rate-limited) warning for a failure that is retried."""
        self.warner.warn(self.name, "perseus: " + self.outage, self.url, describe(err))

    def fail(self, failure: LinkFailure) -> None:
        """Stops the link for good: one error line, the failure kept for status() and wait_ready()."""
        self.failure = failure
        self.logger.error(
            "perseus: %s at %s rejected this client (%s: %s%s); it stays disconnected, training continues at default clocks",
            self.name,
            self.url,
            failure.code,
            failure.message,
            "".join(f"; {f}: {d}" for f, d in failure.violations),
        )
        self.on_failure(failure)

    async def run(self) -> None:
        """The loop: connect, serve, and on failure warn, back off and reconnect."""
        while not self.stop.is_set() and self.failure is None:
            channel = open_channel(self.url, self.security)
            try:
                await check_server_version(channel, f"{self.name} at {self.url}", self.logger)
                await self.serve(channel)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # any failure: degrade, warn once, retry
                if self.stop.is_set():
                    return
                failure = self.permanent(err)
                if failure is not None:
                    self.fail(failure)
                    return
                if not self.is_expected(err):
                    self.warn_transient(err)
            finally:
                self.up = False
                self.disconnected()
                await channel.close(grace=None)
            if await wait_event(self.stop, self._backoff):
                return
            self._backoff = min(self._backoff * 2, self.retry_max_s)

    def disconnected(self) -> None:
        """Called after every connection ends (hook for the link's own state)."""
