"""Stage profiles (Zeus/Perseus CSV: ``stage,instruction,frequency,time,energy``) for the emulator.

The emulator needs one thing from a profile: how long an instruction of a stage lasts at a clock,
so that the emulated GPU sleeps that long (time-scaled). Energy is *not* taken from here: it is
what the GPU agent measures (its simulated backend), so the demo's energies are measurements.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from perseus.schedule import Kind


@dataclass(frozen=True)
class ProfileOption:
    """One measured option: an instruction of a stage at one SM clock."""

    frequency_mhz: int
    time_s: float
    energy_j: float


@dataclass(frozen=True)
class StageProfile:
    """Per (stage, kind): options by clock. Build with :func:`load_profile`."""

    options: Mapping[tuple[int, Kind], Mapping[int, ProfileOption]]
    num_stages: int

    @property
    def frequencies_mhz(self) -> list[int]:
        """Clocks present for every (stage, kind), descending."""
        common: set[int] | None = None
        for opts in self.options.values():
            common = set(opts) if common is None else common & set(opts)
        return sorted(common or (), reverse=True)

    @property
    def max_frequency_mhz(self) -> int:
        return self.frequencies_mhz[0]

    def option(self, stage: int, kind: Kind, frequency_mhz: int) -> ProfileOption:
        """The option at ``frequency_mhz``; 0 means default clocks (the highest). A clock missing
        from the profile takes the nearest one at or above it (a GPU never runs slower than asked)."""
        opts = self.options[(stage, kind)]
        if frequency_mhz == 0:
            return opts[max(opts)]
        hit = opts.get(frequency_mhz)
        if hit is not None:
            return hit
        above = [f for f in opts if f >= frequency_mhz]
        return opts[min(above) if above else max(opts)]

    def time_s(self, stage: int, kind: Kind, frequency_mhz: int) -> float:
        return self.option(stage, kind, frequency_mhz).time_s


def load_profile(path: str | Path) -> StageProfile:
    """Reads a stage-level profile CSV (header ``stage,instruction,frequency,time,energy``)."""
    options: dict[tuple[int, Kind], dict[int, ProfileOption]] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"stage", "instruction", "frequency", "time", "energy"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ValueError(f"{path}: header must contain {sorted(need)}, got {reader.fieldnames}")
        for lineno, row in enumerate(reader, start=2):
            kind = row["instruction"].strip()
            if kind not in ("forward", "backward"):
                raise ValueError(f"{path}:{lineno}: instruction must be forward or backward, got {kind!r}")
            stage = int(row["stage"])
            freq = int(float(row["frequency"]))
            t, e = float(row["time"]), float(row["energy"])
            if not (t > 0 and e > 0):
                raise ValueError(f"{path}:{lineno}: time and energy must be > 0, got {t}, {e}")
            key: tuple[int, Kind] = (stage, "forward" if kind == "forward" else "backward")
            options.setdefault(key, {})[freq] = ProfileOption(freq, t, e)
    stages = {s for s, _ in options}
    n = max(stages) + 1 if stages else 0
    for s in range(n):
        for k in ("forward", "backward"):
            if (s, k) not in options:
                raise ValueError(f"{path}: no rows for stage {s} {k}")
    return StageProfile(options=options, num_stages=n)
