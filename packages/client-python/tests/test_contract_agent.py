"""Cross-language contract of perseus.agent.v1.GpuAgent: the generated Python stubs call the TS agent
(simulated GPUs) hosted by ``perseus serve``, over TCP and over a Unix socket."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from conftest import PerseusServer, field_violations
from perseus.agent.v1 import agent_pb2, agent_pb2_grpc
from perseus.common.v1 import common_pb2


def _stub(server: PerseusServer) -> agent_pb2_grpc.GpuAgentStub:
    return agent_pb2_grpc.GpuAgentStub(server.channel)


def _invalid(call: Callable[..., Any], request: Any) -> list[tuple[str, str]]:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return field_violations(info.value)


class _Session:
    """A bidi session driven from a queue; responses are read on the caller's thread."""

    def __init__(self, stub: agent_pb2_grpc.GpuAgentStub) -> None:
        self._out: queue.SimpleQueue[agent_pb2.SessionRequest | None] = queue.SimpleQueue()
        self.responses = stub.OpenSession(self._requests(), timeout=30)

    def _requests(self) -> Iterator[agent_pb2.SessionRequest]:
        while True:
            msg = self._out.get()
            if msg is None:
                return
            yield msg

    def send(self, msg: agent_pb2.SessionRequest) -> None:
        self._out.put(msg)

    def close(self) -> None:
        self._out.put(None)


def test_list_devices(perseus_server: PerseusServer) -> None:
    resp = _stub(perseus_server).ListDevices(agent_pb2.ListDevicesRequest(), timeout=10)
    assert len(resp.devices) == 8
    d = resp.devices[0]
    assert d.backend == agent_pb2.BACKEND_SIMULATED
    assert d.supported_sm_clocks_mhz[0] == 1410 and d.supported_sm_clocks_mhz[-1] == 210
    assert d.power_limit_w == 400


def test_read_energy_invalid_device(perseus_server: PerseusServer) -> None:
    v = _invalid(_stub(perseus_server).ReadEnergy, agent_pb2.ReadEnergyRequest(device_index=99))
    assert v == [("device_index", "no device 99 on this node (it has 8: 0-7)")]


def test_read_energy_monotonic(perseus_server: PerseusServer) -> None:
    stub = _stub(perseus_server)
    a = stub.ReadEnergy(agent_pb2.ReadEnergyRequest(device_index=7), timeout=10)
    time.sleep(0.05)
    b = stub.ReadEnergy(agent_pb2.ReadEnergyRequest(device_index=7), timeout=10)
    assert b.energy_j > a.energy_j
    assert b.power_w == pytest.approx(83.64)


def test_set_clocks_invalid(perseus_server: PerseusServer) -> None:
    v = _invalid(_stub(perseus_server).SetClocks, agent_pb2.SetClocksRequest(lease_id="", device_index=0, sm_clock_mhz=1000))
    assert v == [
        ("lease_id", "is required"),
        ("sm_clock_mhz", "1000 MHz is not a supported SM clock of device 0; nearest supported: 990, 1005 MHz"),
    ]


def test_reset_clocks_invalid(perseus_server: PerseusServer) -> None:
    v = _invalid(_stub(perseus_server).ResetClocks, agent_pb2.ResetClocksRequest(lease_id="x;y", device_index=8))
    assert v == [
        ("lease_id", 'must match [A-Za-z0-9-]{1,64}, got "x;y"'),
        ("device_index", "no device 8 on this node (it has 8: 0-7)"),
    ]


def test_set_clocks_without_lease_is_failed_precondition(perseus_server: PerseusServer) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _stub(perseus_server).SetClocks(agent_pb2.SetClocksRequest(lease_id="abc", device_index=6, sm_clock_mhz=1005), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == "lease_id does not hold device 6: the device is not leased (open a session first)"


def test_open_session_invalid_open(perseus_server: PerseusServer) -> None:
    s = _Session(_stub(perseus_server))
    s.send(agent_pb2.SessionRequest(open=agent_pb2.OpenSession(job_id="bad id", device_index=0)))
    with pytest.raises(grpc.RpcError) as info:
        next(iter(s.responses))
    s.close()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(info.value) == [
        ("open.job_id", 'must match [A-Za-z0-9._-]{1,128}, got "bad id"'),
        ("open.rank", "is required"),
    ]


def test_session_measurement_in_stream_error_and_reset(perseus_server: PerseusServer) -> None:
    stub = _stub(perseus_server)
    s = _Session(stub)
    rank = common_pb2.RankIdentity(rank=2, pp_rank=1)
    s.send(agent_pb2.SessionRequest(open=agent_pb2.OpenSession(job_id="py-job", rank=rank, device_index=5)))
    it = iter(s.responses)
    opened = next(it)
    assert opened.WhichOneof("event") == "opened"
    lease_id = opened.opened.lease_id
    # A second claimant is refused, naming the holder.
    other = _Session(stub)
    other.send(agent_pb2.SessionRequest(open=agent_pb2.OpenSession(job_id="thief", rank=rank, device_index=5)))
    with pytest.raises(grpc.RpcError) as info:
        next(iter(other.responses))
    other.close()
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert 'leased by job "py-job" rank 2' in (info.value.details() or "")
    # An unsupported clock is answered in-stream, naming the nearest supported clocks.
    s.send(agent_pb2.SessionRequest(begin=agent_pb2.Begin(seq=1, instruction=common_pb2.INSTRUCTION_KIND_FORWARD, frequency_mhz=1001, t_ns=time.monotonic_ns())))
    err = next(it)
    assert err.WhichOneof("event") == "error"
    assert err.error.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [(v.field, v.description) for v in err.error.error.violations] == [
        ("begin.frequency_mhz", "1001 MHz is not a supported SM clock of device 5; nearest supported: 990, 1005 MHz")
    ]
    s.send(agent_pb2.SessionRequest(begin=agent_pb2.Begin(seq=2, instruction=common_pb2.INSTRUCTION_KIND_BACKWARD, microbatch=3, frequency_mhz=1005, t_ns=time.monotonic_ns())))
    time.sleep(0.1)
    s.send(agent_pb2.SessionRequest(end=agent_pb2.End(seq=2, t_ns=time.monotonic_ns())))
    m = next(it)
    assert m.WhichOneof("event") == "measurement"
    assert (m.measurement.seq, m.measurement.frequency_applied_mhz, m.measurement.microbatch) == (2, 1005, 3)
    assert m.measurement.time_s >= 0.1
    assert m.measurement.energy_j > 0
    assert stub.SetClocks(agent_pb2.SetClocksRequest(lease_id=lease_id, device_index=5, sm_clock_mhz=1200), timeout=10).applied_sm_clock_mhz == 1200
    assert stub.ListDevices(agent_pb2.ListDevicesRequest(), timeout=10).devices[5].locked_sm_clock_mhz == 1200
    s.close()
    assert list(it) == []
    deadline = time.monotonic() + 30
    while stub.ListDevices(agent_pb2.ListDevicesRequest(), timeout=10).devices[5].locked_sm_clock_mhz != 0:
        assert time.monotonic() < deadline, "device 5 was not reset after the session ended"
        time.sleep(0.02)
