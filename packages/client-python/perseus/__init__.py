"""Perseus-TS Python client.

Trainers import this package to remove energy bloat from pipeline-parallel training:
:class:`PipelineFrequencyOptimizer` is the four hooks (``on_step_begin/end``,
``on_instruction_begin/end``) that apply the optimizer's per-instruction GPU clocks through the
node's GPU agent. The generated gRPC stubs live in ``perseus.agent.v1``, ``perseus.profiler.v1``
and ``perseus.optimizer.v1``; :mod:`perseus.emulate` is the emulated pipeline trainer used by the
demo and tests.
"""

from perseus._records import ClientStatus, LinkFailure, ReceivedMeasurement, ReportedIteration, StragglerAck
from perseus.errors import ConfigurationError
from perseus.pipeline import PipelineFrequencyOptimizer
from perseus.schedule import RankSchedule, gpipe, interleaved, one_f_one_b, parse_kind, stage_order
from perseus.sync import make_sync

__version__ = "0.1.0"

__all__ = [
    "ClientStatus",
    "ConfigurationError",
    "LinkFailure",
    "PipelineFrequencyOptimizer",
    "RankSchedule",
    "ReceivedMeasurement",
    "ReportedIteration",
    "StragglerAck",
    "gpipe",
    "interleaved",
    "make_sync",
    "one_f_one_b",
    "parse_kind",
    "stage_order",
]
