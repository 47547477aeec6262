"""Server reflection as tools use it: grpcio-reflection's descriptor database behind a protobuf
DescriptorPool (what grpcurl-like clients do) resolves every method's request and response types of
every service, transitively, from the served file descriptors alone, and drives real calls with
message classes built from them (no generated code)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from conftest import PerseusServer

SERVICES = {
    "perseus.agent.v1.GpuAgent",
    "perseus.profiler.v1.Profiler",
    "perseus.optimizer.v1.Optimizer",
    "grpc.health.v1.Health",
}


def _resolve(d: descriptor.Descriptor, seen: set[str]) -> None:
    if d.full_name in seen:
        return
    seen.add(d.full_name)
    for f in d.fields:
        if f.message_type is not None:
            _resolve(f.message_type, seen)


def _pool(channel: grpc.Channel) -> tuple[ProtoReflectionDescriptorDatabase, descriptor_pool.DescriptorPool]:
    db = ProtoReflectionDescriptorDatabase(channel)
    return db, descriptor_pool.DescriptorPool(db)


def test_every_method_of_every_service_resolves(perseus_server: PerseusServer) -> None:
    db, pool = _pool(perseus_server.channel)
    assert set(db.get_services()) == SERVICES
    methods = 0
    for name in sorted(SERVICES):
        service = pool.FindServiceByName(name)
        assert service.methods, name
        for m in service.methods:
            seen: set[str] = set()
            _resolve(m.input_type, seen)
            _resolve(m.output_type, seen)
            methods += 1
    assert methods >= 24


def test_files_carry_their_real_names_and_imports(perseus_server: PerseusServer) -> None:
    _, pool = _pool(perseus_server.channel)
    agent = pool.FindFileContainingSymbol("perseus.agent.v1.GpuAgent")
    assert agent.name == "perseus/agent/v1/agent.proto"
    assert [d.name for d in agent.dependencies] == ["perseus/common/v1/common.proto"]
    # A field typed by the imported file resolves to the common package's message, fully qualified.
    types = {f.message_type.full_name for m in agent.message_types_by_name.values() for f in m.fields if f.message_type is not None}
    assert any(t.startswith("perseus.common.v1.") for t in types)
    health = pool.FindFileContainingSymbol("grpc.health.v1.Health")
    assert health.name == "grpc/health/v1/health.proto"


def _call(channel: grpc.Channel, pool: descriptor_pool.DescriptorPool, method: str, fields: dict[str, object]) -> dict[str, Any]:
    """Calls ``Service/Method`` with request and response classes built from reflected descriptors."""
    service_name, method_name = method.rsplit("/", 1)
    m = pool.FindServiceByName(service_name).methods_by_name[method_name]
    request_cls = message_factory.GetMessageClass(m.input_type)
    response_cls = message_factory.GetMessageClass(m.output_type)
    rpc: Callable[..., Message] = channel.unary_unary(
        f"/{service_name}/{method_name}",
        request_serializer=lambda msg: msg.SerializeToString(),
        response_deserializer=response_cls.FromString,
    )
    return json_format.MessageToDict(rpc(request_cls(**fields), timeout=10))


def test_calls_with_reflected_types(perseus_server: PerseusServer) -> None:
    _, pool = _pool(perseus_server.channel)
    health = _call(perseus_server.channel, pool, "grpc.health.v1.Health/Check", {"service": "perseus.agent.v1.GpuAgent"})
    assert health["status"] == "SERVING"
    devices = _call(perseus_server.channel, pool, "perseus.agent.v1.GpuAgent/ListDevices", {})
    assert len(devices["devices"]) > 0
