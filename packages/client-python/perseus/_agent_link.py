"""The agent link: the ``OpenSession`` bidi stream (lease; Begin/End out, Measurement in)."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from perseus._grpc import status_code
from perseus._link import Link, Rejected, failure_of
from perseus._records import LinkFailure
from perseus.agent.v1 import agent_pb2, agent_pb2_grpc

if TYPE_CHECKING:
    from perseus._io import IoCore

_LEASE_HOLDER = re.compile(r'leased by job "(?P<job>[^"]*)" rank (?P<rank>\d+)')


class AgentLink(Link):
    name = "agent"
    outage = "GPU agent at %s unavailable (%s); training continues at the device's default clocks, retrying"
    recovery = "GPU agent at %s reachable again; clock control resumed"

    def __init__(self, core: IoCore, url: str, **kw: Any) -> None:
        super().__init__(url, core.cfg.security["agent"], **kw)
        self.core = core
        self.out: asyncio.Queue[agent_pb2.SessionRequest | None] = asyncio.Queue()
        self.session = 0
        self.lease_id = ""
        self.device_name = ""
        self.simulated = False

    def permanent(self, err: BaseException) -> LinkFailure | None:
        failure = failure_of(self.name, err)
        if failure is not None and failure.code == grpc.StatusCode.FAILED_PRECONDITION.name:
            # Our own lease from a connection the agent has not yet seen die: it is released when
            # the agent notices, so this one is an outage, not a configuration error.
            m = _LEASE_HOLDER.search(failure.message)
            cfg = self.core.cfg
            if m is not None and m.group("job") == cfg.job_id and int(m.group("rank")) == cfg.rank.rank:
                return None
        return failure

    async def serve(self, channel: grpc.aio.Channel) -> None:
        cfg = self.core.cfg
        stub = agent_pb2_grpc.GpuAgentStub(channel)
        call: Any = stub.OpenSession(metadata=self.metadata)
        try:
            await call.write(
                agent_pb2.SessionRequest(open=agent_pb2.OpenSession(job_id=cfg.job_id, rank=cfg.rank, device_index=cfg.device_index, lease_ttl_s=cfg.lease_ttl_s, num_stages=cfg.pp_degree))
            )
            first: Any = await call.read()
            if first is grpc.aio.EOF:
                raise ConnectionError("agent closed the session before granting a lease")
            if first.WhichOneof("event") == "error":
                e = first.error.error
                raise Rejected(status_code(e.code), e.message, tuple((v.field, v.description) for v in e.violations))
            if first.WhichOneof("event") != "opened":
                raise ConnectionError("agent answered the open with something other than a lease")
            device = first.opened.device
            self.lease_id = first.opened.lease_id
            self.device_name = device.name
            self.simulated = device.backend == agent_pb2.BACKEND_SIMULATED
            if self.simulated:
                self.core.note_simulated(device.name)
            self.core.set_supported(list(device.supported_sm_clocks_mhz))
            self.core.agent_known()
            # Drop anything queued for a previous session; seqs continue increasing.
            while not self.out.empty():
                self.out.get_nowait()
            self.session += 1
            self.connected()
            writer = asyncio.ensure_future(self._write(call))
            try:
                while True:
                    msg: Any = await call.read()
                    if msg is grpc.aio.EOF:
                        if self.stop.is_set():
                            return
                        raise ConnectionError("agent ended the session")
                    self.core.on_agent_message(msg)
            finally:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
        finally:
            call.cancel()

    def disconnected(self) -> None:
        self.core.drop_sent_pending()

    async def _write(self, call: Any) -> None:
        while True:
            msg = await self.out.get()
            if msg is None:
                await call.done_writing()
                return
            await call.write(msg)
