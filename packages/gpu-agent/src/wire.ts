import type { agentV1, commonV1 } from '@perseus/proto';
import type { Logger, SpecifiedEnum } from '@perseus/service-kit';
import { INSTRUCTION_FROM_WIRE, toStreamError } from '@perseus/service-kit';
import type { AdminResetResult } from './agent';
import type { BackendKind } from './backend';
import type { DeviceView } from './device-view';
import type { MeasurementValue, SessionOpenedValue } from './session';
import type { RankIdentityValue } from './validate';

/**
 * Domain values ↔ perseus.agent.v1 messages (the adapter's half; the core knows no wire types).
 * Enum tables are keyed by the generated enum types, so a value added to the proto breaks the
 * build here until it is mapped.
 */

export const BACKEND_FROM_WIRE: Readonly<
  Record<SpecifiedEnum<agentV1.Backend__Output>, BackendKind>
> = {
  BACKEND_NVML: 'nvml',
  BACKEND_AMDSMI: 'amdsmi',
  BACKEND_SIMULATED: 'simulated',
};

export { INSTRUCTION_FROM_WIRE };

function invert<W extends string, D extends string>(table: Readonly<Record<W, D>>): Record<D, W> {
  const out: Partial<Record<D, W>> = {};
  for (const w of Object.keys(table) as W[]) out[table[w]] = w;
  return out as Record<D, W>;
}

const BACKEND_TO_WIRE = invert(BACKEND_FROM_WIRE);
const INSTRUCTION_TO_WIRE = invert(INSTRUCTION_FROM_WIRE);

function rankToWire(r: RankIdentityValue): commonV1.RankIdentity {
  return { rank: r.rank, dp_rank: r.dpRank, pp_rank: r.ppRank, tp_rank: r.tpRank };
}

export function resetDeviceToWire(r: AdminResetResult): agentV1.ResetDevice {
  return {
    index: r.index,
    ended_lease: r.endedLease
      ? { lease_id: '', job_id: r.endedLease.jobId, rank: rankToWire(r.endedLease.rank) }
      : null,
    ok: r.result === 'ok',
    error: r.result === 'ok' ? '' : r.result,
    locked_sm_clock_mhz: r.lockedSmClockMhz,
  };
}

export function deviceToWire(d: DeviceView): agentV1.Device {
  const l = d.lease;
  return {
    index: d.info.index,
    uuid: d.info.uuid,
    pci_bus_id: d.info.pciBusId,
    name: d.info.name,
    backend: BACKEND_TO_WIRE[d.backend],
    supported_sm_clocks_mhz: [...d.info.supportedSmClocksMhz],
    supported_memory_clocks_mhz: [...d.info.supportedMemoryClocksMhz],
    energy_counter_available: d.info.energyCounterAvailable,
    locked_sm_clock_mhz: d.lockedSmClockMhz,
    power_limit_w: d.powerLimitW,
    simulated: d.simulated,
    lease: l
      ? {
          lease_id: l.leaseId ?? '',
          job_id: l.jobId,
          rank: rankToWire(l.rank),
          expires_at_unix_ms: String(l.expiresAtUnixMs),
        }
      : null,
  };
}

export function openedToWire(v: SessionOpenedValue): agentV1.SessionResponse {
  return {
    opened: { lease_id: v.leaseId, device: deviceToWire(v.device), lease_ttl_s: v.leaseTtlS },
  };
}

export function measurementToWire(m: MeasurementValue): agentV1.SessionResponse {
  return {
    measurement: {
      seq: String(m.seq),
      instruction: INSTRUCTION_TO_WIRE[m.instruction],
      microbatch: m.microbatch,
      chunk: m.chunk,
      frequency_applied_mhz: m.frequencyAppliedMhz,
      time_s: m.timeS,
      energy_j: m.energyJ,
    },
  };
}

/** An in-stream error: a domain error keeps its status (and field violations); anything else is INTERNAL. */
export function eventErrorToWire(
  seq: number,
  err: unknown,
  logger: Logger,
): agentV1.SessionResponse {
  return { error: { seq: String(seq), error: toStreamError(err, logger, 'session event') } };
}

/** The seq of a raw session message, for answering it when it failed validation (0 if none). */
export function seqOf(msg: agentV1.SessionRequest__Output): number {
  const raw = msg.begin?.seq ?? msg.end?.seq;
  const n = Number(raw ?? 0);
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}
