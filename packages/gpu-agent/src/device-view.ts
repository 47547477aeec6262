import type { BackendKind, DeviceInfo } from './backend';
import type { RankIdentityValue } from './validate';

/** One device as ListDevices and SessionOpened describe it (domain values; wire.ts maps them). */
export interface DeviceView {
  info: DeviceInfo;
  backend: BackendKind;
  /** The device is a simulation: its energy and clocks are not a real GPU's. */
  simulated: boolean;
  /** Locked SM clock the driver reports, MHz (0 = default clocks). */
  lockedSmClockMhz: number;
  powerLimitW: number;
  /** The holder; `leaseId` only in the holder's own SessionOpened. */
  lease:
    | {
        leaseId: string | undefined;
        jobId: string;
        rank: RankIdentityValue;
        expiresAtUnixMs: number;
      }
    | undefined;
}
