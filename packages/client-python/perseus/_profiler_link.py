"""The profiler link: RegisterJob (rank 0), the ``ReportMeasurements`` bidi stream with per-batch
acks (unacknowledged batches are re-sent with the same id after a reconnect, so nothing is counted
twice), and ReportIterations."""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from perseus._grpc import status_code, wait_event
from perseus._link import Link
from perseus.profiler.v1 import profiler_pb2, profiler_pb2_grpc

if TYPE_CHECKING:
    from perseus._io import IoCore

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""gRPC's default receive limit: the profiler drops a stream whose message is larger."""
MAX_BATCH_BYTES = 1024 * 1024
"""What the client puts in one message at most (a quarter of the limit: headroom for the envelope)."""
MAX_BATCH_MEASUREMENTS = 10_000
"""The profiler's cap on measurements per batch (its default, PERSEUS_PROFILER_MAX_BATCH)."""
_MAX_UNACKED = 200
_DEFERRED = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE)
"""Per-batch answers meaning "not yet" (the job is not registered there yet): the batch is re-sent."""


def split_batches(items: Sequence[Any], max_bytes: int = MAX_BATCH_BYTES, max_items: int = MAX_BATCH_MEASUREMENTS) -> list[list[Any]]:
    """Consecutive chunks of ``items``, each at most ``max_items`` long and with encoded sizes
    (+ field overhead) under ``max_bytes``; order kept, nothing dropped."""
    chunks: list[list[Any]] = []
    current: list[Any] = []
    size = 0
    for item in items:
        n = item.ByteSize() + 8  # tag + length prefix of a repeated message field
        if current and (size + n > max_bytes or len(current) >= max_items):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += n
    if current:
        chunks.append(current)
    return chunks


class ProfilerLink(Link):
    name = "profiler"
    outage = "profiler at %s unavailable (%s); measurements are buffered and re-sent, training continues"
    recovery = "profiler at %s reachable again"

    def __init__(self, core: IoCore, url: str, **kw: Any) -> None:
        super().__init__(url, core.cfg.security["profiler"], **kw)
        self.core = core
        self.wakeup = asyncio.Event()
        self.buffer: list[profiler_pb2.InstructionMeasurement] = []
        self.unacked: collections.OrderedDict[str, profiler_pb2.MeasurementBatch] = collections.OrderedDict()
        self.iteration_records: list[profiler_pb2.IterationRecord] = []
        self.acked = 0
        self._ids = itertools.count(1)
        cfg = core.cfg
        self._prefix = f"{cfg.job_id}-r{cfg.rank.rank}-{os.getpid()}-{int(time.time() * 1000) % 10**10}"
        self._registered = False

    def pending(self) -> bool:
        return bool(self.buffer or self.unacked or self.iteration_records)

    def add(self, m: profiler_pb2.InstructionMeasurement) -> None:
        self.buffer.append(m)
        if len(self.buffer) >= self.core.cfg.batch_max:
            self.cut()

    def add_iteration(self, rec: profiler_pb2.IterationRecord) -> None:
        self.iteration_records.append(rec)
        if len(self.iteration_records) > 10_000:
            del self.iteration_records[: len(self.iteration_records) - 10_000]

    def cut(self) -> None:
        """Turns the buffer into batches (each well under the 4 MiB message limit) and wakes the sender.
        Nothing is cut before the optimizer named this generation's profile job id."""
        job_id = self.core.profile_job_id
        if not self.buffer or not job_id:
            if len(self.buffer) > _MAX_UNACKED * self.core.cfg.batch_max:
                del self.buffer[: len(self.buffer) - _MAX_UNACKED * self.core.cfg.batch_max]
            return
        for chunk in split_batches(self.buffer, MAX_BATCH_BYTES, min(self.core.cfg.batch_max, MAX_BATCH_MEASUREMENTS)):
            batch_id = f"{self._prefix}-{next(self._ids)}"
            self.unacked[batch_id] = profiler_pb2.MeasurementBatch(batch_id=batch_id, job_id=job_id, measurements=chunk)
        self.buffer = []
        # Bounded memory during a long profiler outage: the oldest batches go first.
        while len(self.unacked) > _MAX_UNACKED:
            self.unacked.popitem(last=False)
        self.wakeup.set()

    async def serve(self, channel: grpc.aio.Channel) -> None:
        cfg = self.core.cfg
        stub = profiler_pb2_grpc.ProfilerStub(channel)
        await self.core.wait_profile_job_id()
        if cfg.rank.rank == 0 and not self._registered:
            await self.core.wait_supported(5.0)
            await self._register(stub)
            self._registered = True
        call: Any = stub.ReportMeasurements(metadata=self.metadata)
        try:
            self.connected()
            in_flight: set[str] = set()
            reader = asyncio.ensure_future(self._read(call, in_flight))
            try:
                last_cut = time.monotonic()
                while True:
                    await wait_event(self.wakeup, cfg.batch_interval_s)
                    self.wakeup.clear()
                    if self.stop.is_set():
                        return
                    if reader.done():
                        reader.result()
                        raise ConnectionError("profiler ended the measurement stream")
                    if time.monotonic() - last_cut >= cfg.batch_interval_s or len(self.buffer) >= cfg.batch_max:
                        self.cut()
                        last_cut = time.monotonic()
                    for batch_id, batch in list(self.unacked.items()):
                        if batch_id not in in_flight:
                            in_flight.add(batch_id)
                            await call.write(batch)
                    await self._send_iterations(stub)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        finally:
            call.cancel()

    async def _send_iterations(self, stub: profiler_pb2_grpc.ProfilerAsyncStub) -> None:
        while self.iteration_records:
            chunk = split_batches(self.iteration_records)[0]
            try:
                await stub.ReportIterations(profiler_pb2.ReportIterationsRequest(job_id=self.core.profile_job_id, iterations=chunk), timeout=10, metadata=self.metadata)
            except grpc.aio.AioRpcError as err:
                if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise  # kept: the link reconnects and sends them then
                self.warner.warn("profiler-iterations", "perseus: profiler rejected iteration records (%s): %s", err.code().name, err.details())
            del self.iteration_records[: len(chunk)]

    async def _register(self, stub: profiler_pb2_grpc.ProfilerAsyncStub) -> None:
        cfg = self.core.cfg
        try:
            await stub.RegisterJob(
                profiler_pb2.RegisterJobRequest(
                    job_id=self.core.profile_job_id,
                    pipeline=cfg.pipeline_spec(),
                    dp_degree=cfg.dp_degree,
                    tp_degree=cfg.tp_degree,
                    supported_frequencies_mhz=self.core.supported,
                ),
                timeout=10,
                metadata=self.metadata,
            )
        except grpc.aio.AioRpcError as err:
            # The optimizer registers the job with the profiler too (with every rank's clocks); an
            # existing registration is what the measurements need, whoever made it.
            if err.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS):
                raise

    async def _read(self, call: Any, in_flight: set[str]) -> None:
        while True:
            ack = await call.read()
            if ack is grpc.aio.EOF:
                raise ConnectionError("profiler ended the measurement stream")
            in_flight.discard(ack.batch_id)
            batch = self.unacked.get(ack.batch_id)
            if ack.HasField("error") and ack.error.code != grpc.StatusCode.OK.value[0]:
                if status_code(ack.error.code) in _DEFERRED and batch is not None:
                    self.warner.warn("profiler-batch", "perseus: profiler deferred a batch (%s); retrying", ack.error.message)
                    await asyncio.sleep(min(self.retry_max_s, 1.0))
                    continue
                self.warner.warn("profiler-batch", "perseus: profiler rejected a measurement batch: %s", ack.error.message)
            elif batch is not None:
                self.acked += len(batch.measurements)
            self.unacked.pop(ack.batch_id, None)
            self.core.check_flushes()
