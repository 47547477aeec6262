/**
 * The one interface every GPU backend implements (NVML, AMD SMI, simulated). Every driver call is
 * async so FFI backends can run it off the event loop (koffi `.async`), and the agent calls them
 * only from a per-device worker, never from a stream handler.
 */

/** Which driver family controls a device. */
export type BackendKind = 'nvml' | 'amdsmi' | 'simulated';

/** Static facts about one device, discovered once at backend start. */
export interface DeviceInfo {
  /** Index on this node (the backend's own device index). */
  readonly index: number;
  readonly uuid: string;
  /** PCI bus id, e.g. "00000000:07:00.0". */
  readonly pciBusId: string;
  /** Marketing name, e.g. "NVIDIA A100-SXM4-40GB". */
  readonly name: string;
  /** Supported SM clocks, MHz, descending (for AMD: the min..max range in the driver's steps). */
  readonly supportedSmClocksMhz: readonly number[];
  /** Supported memory clocks, MHz, descending. */
  readonly supportedMemoryClocksMhz: readonly number[];
  /** A cumulative hardware energy counter exists (else energy is integrated from power). */
  readonly energyCounterAvailable: boolean;
  /** Default (boot) power limit, watts. */
  readonly defaultPowerLimitW: number;
  /** Allowed power-limit range, watts. */
  readonly powerLimitRangeW: readonly [number, number];
}

/** What a simulated device is running, so its power model knows what to draw. */
export interface DeviceActivity {
  /** Pipeline stage (selects the profile rows). */
  readonly stage: number;
  readonly instruction: 'forward' | 'backward';
}

/**
 * A GPU driver behind one interface. All methods may throw; the agent catches, logs, audits and
 * reports them. Implementations must be safe to call concurrently for different device indices.
 */
export interface GpuBackend {
  readonly kind: BackendKind;
  /** Devices, by index (stable for the backend's lifetime). */
  devices(): readonly DeviceInfo[];
  /** Locks the SM clock to `mhz` (a supported clock). */
  lockSmClock(index: number, mhz: number): Promise<void>;
  /** Returns the SM clock to its default (unlocked) behaviour. */
  resetSmClock(index: number): Promise<void>;
  /** Locks the memory clock at its maximum (Perseus only ever changes SM clocks). */
  lockMemoryClockMax(index: number): Promise<void>;
  /** Returns the memory clock to its default. */
  resetMemoryClock(index: number): Promise<void>;
  getPowerLimitW(index: number): Promise<number>;
  setPowerLimitW(index: number, watts: number): Promise<void>;
  resetPowerLimit(index: number): Promise<void>;
  /** Cumulative energy since an arbitrary origin, millijoules, monotonic. */
  readEnergyMj(index: number): Promise<number>;
  /** Instant power draw, watts. */
  readPowerW(index: number): Promise<number>;
  /** The SM clock the backend reports as locked, MHz, or 0 when at defaults (if it can tell). */
  readLockedSmClockMhz(index: number): Promise<number>;
  /**
   * Hint for simulated devices (real devices ignore it): what runs from `sinceNs` (agent monotonic
   * clock, the client's mapped timestamp; default now) on, or null for idle. A simulated device
   * rewrites its power timeline from `sinceNs` on, however late the note arrives — the trainer
   * really computed from then — so readings taken after `sinceNs` may be revised (a simulated
   * counter can read lower than a reading taken before a late note). Returns the counter value at
   * the instant the note took effect, which the agent records as an exact sample.
   */
  noteActivity?(
    index: number,
    activity: DeviceActivity | null,
    sinceNs?: bigint,
  ): { tNs: bigint; energyMj: number } | void;
  /**
   * The clock the devices run on, ns; the agent maps client timestamps onto it and samples energy
   * on it. Default (absent): CLOCK_MONOTONIC. Simulated devices of a time-scaled emulation run on
   * scaled time (see SimulatedBackendOptions.timeScale).
   */
  readonly clockNs?: () => bigint;
  /** Releases the driver (nvmlShutdown / amdsmi_shut_down). */
  close(): Promise<void>;
}

/**
 * True for a driver error that means "this device cannot do that at all" (NVML NOT_SUPPORTED), as
 * opposed to a call that failed this time. The agent stops asking for such a feature on that device.
 */
export function isUnsupportedDriverError(err: unknown): boolean {
  return (
    typeof err === 'object' &&
    err !== null &&
    (err as { unsupported?: unknown }).unsupported === true
  );
}

/** Nearest supported clocks below and above `mhz` (for error messages), at most two. */
export function nearestClocks(supported: readonly number[], mhz: number): number[] {
  let below: number | undefined;
  let above: number | undefined;
  for (const c of supported) {
    if (c <= mhz && (below === undefined || c > below)) below = c;
    if (c >= mhz && (above === undefined || c < above)) above = c;
  }
  return [...new Set([below, above].filter((c): c is number => c !== undefined))].sort(
    (a, b) => a - b,
  );
}
