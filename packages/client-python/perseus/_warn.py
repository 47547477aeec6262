"""Rate-limited warnings: one line per outage, never a flood from the training loop."""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedWarner:
    """Emits at most one warning per key per ``interval_s``; :meth:`recovered` logs the end of an outage once.

    A service that flaps is reported once per interval, not once per failed call, so a trainer's
    log stays readable during an outage of any length.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._down: set[str] = set()
        self._lock = threading.Lock()
        self.emitted = 0

    def warn(self, key: str, msg: str, *args: object) -> bool:
        """Logs ``msg`` unless ``key`` was warned about within the interval; returns whether it logged."""
        now = time.monotonic()
        with self._lock:
            self._down.add(key)
            last = self._last.get(key)
            if last is not None and now - last < self._interval_s:
                return False
            self._last[key] = now
            self.emitted += 1
        self._logger.warning(msg, *args)
        return True

    def recovered(self, key: str, msg: str, *args: object) -> None:
        """Logs a recovery (info) if ``key`` was down."""
        with self._lock:
            if key not in self._down:
                return
            self._down.discard(key)
        self._logger.info(msg, *args)
