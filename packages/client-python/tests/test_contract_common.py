"""Cross-language contract: health and reflection of the TypeScript servers, from Python."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from conftest import PerseusServer

SERVICES = [
    "perseus.agent.v1.GpuAgent",
    "perseus.profiler.v1.Profiler",
    "perseus.optimizer.v1.Optimizer",
]


def test_health_overall_and_per_service(perseus_server: PerseusServer) -> None:
    stub = health_pb2_grpc.HealthStub(perseus_server.channel)
    for name in ["", *SERVICES]:
        resp = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING, name


def test_health_unknown_service_is_not_found(perseus_server: PerseusServer) -> None:
    stub = health_pb2_grpc.HealthStub(perseus_server.channel)
    try:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("expected NOT_FOUND")


def _reflect(channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest) -> reflection_pb2.ServerReflectionResponse:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert len(responses) == 1
    return responses[0]


def test_reflection_lists_the_hosted_services(perseus_server: PerseusServer) -> None:
    resp = _reflect(perseus_server.channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in resp.list_services_response.service}
    assert set(SERVICES) <= names


def test_reflection_describes_a_service_file(perseus_server: PerseusServer) -> None:
    from google.protobuf import descriptor_pb2

    resp = _reflect(
        perseus_server.channel,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="perseus.agent.v1.GpuAgent"),
    )
    files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in resp.file_descriptor_response.file_descriptor_proto]
    agent = next(f for f in files if f.package == "perseus.agent.v1")
    methods = {m.name for s in agent.service for m in s.method}
    assert methods == {"ListDevices", "OpenSession", "SetClocks", "ResetClocks", "ReadEnergy", "AdminReset"}
