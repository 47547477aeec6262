import type { DeviceInfo } from './backend';
import { DeviceWorker } from './device-worker';
import { EnergyTracker } from './energy-tracker';
import type { Lease } from './lease-table';

/** The agent's view of one device: its worker, energy samples, what it changed, who holds it. */
export interface DeviceSlot {
  info: DeviceInfo;
  worker: DeviceWorker;
  energy: EnergyTracker;
  /** SM clock the agent has applied, MHz (0 = default). */
  appliedSmClockMhz: number;
  memoryLocked: boolean;
  /** The driver answered that this device cannot lock its memory clock: never asked again. */
  memoryLockUnsupported: boolean;
  lease: Lease | undefined;
  clockChanges: number;
  lastEnergyMj: number;
}

export function newDeviceSlot(info: DeviceInfo, driverQueueMax?: number): DeviceSlot {
  return {
    info,
    worker: new DeviceWorker(info.index, driverQueueMax),
    energy: new EnergyTracker(),
    appliedSmClockMhz: 0,
    memoryLocked: false,
    memoryLockUnsupported: false,
    lease: undefined,
    clockChanges: 0,
    lastEnergyMj: 0,
  };
}
