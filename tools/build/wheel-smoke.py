"""Run by test-python-wheel.sh with a fresh venv's python, from a folder outside the repository:
the installed wheel (not the sources) imports, reports the suite version, and talks to a running
``perseus serve`` through its generated stubs.

Usage: python wheel-smoke.py <address> <expected-version> <venv-prefix>
"""

import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import perseus
from perseus.agent.v1 import agent_pb2, agent_pb2_grpc

address, version, prefix = sys.argv[1], sys.argv[2], Path(sys.argv[3]).resolve()
where = Path(perseus.__file__).resolve()
assert prefix in where.parents, f"perseus imported from {where}, not from the venv {prefix}"
assert perseus.__version__ == version, f"perseus.__version__ {perseus.__version__} != {version}"
with grpc.insecure_channel(address) as channel:
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="perseus.agent.v1.GpuAgent"), timeout=10
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING, health
    devices = agent_pb2_grpc.GpuAgentStub(channel).ListDevices(agent_pb2.ListDevicesRequest(), timeout=10)
    assert len(devices.devices) > 0, devices
print(
    f"wheel-smoke: perseus {perseus.__version__} from {where.parent}, grpcio {grpc.__version__}, "
    f"agent lists {len(devices.devices)} devices"
)
