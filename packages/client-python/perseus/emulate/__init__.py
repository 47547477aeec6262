"""Emulated pipeline training for demos and tests (no GPU needed).

One OS process per emulated GPU runs a 1F1B pipeline with real inter-stage dependencies, DP
pipelines meet at a per-stage gradient all-reduce barrier, and each instruction sleeps the
simulated GPU time (from a stage profile) at the clock the Perseus hooks asked the agent for,
time-scaled. See :mod:`perseus.emulate.trainer` and :mod:`perseus.emulate.demo`.
"""

from perseus.emulate.profile import ProfileOption, StageProfile, load_profile
from perseus.emulate.trainer import EmulationHandle, EmulationSpec, IterationRecord, run_emulation

__all__ = [
    "EmulationHandle",
    "EmulationSpec",
    "IterationRecord",
    "ProfileOption",
    "StageProfile",
    "load_profile",
    "run_emulation",
]
