"""Perseus-TS Python client.

Trainers import this package to talk to the Perseus services (GPU agent, profiler, optimizer)
through the generated gRPC stubs in ``perseus.agent.v1``, ``perseus.profiler.v1`` and
``perseus.optimizer.v1``.
"""

__version__ = "0.1.0"
