import { seededUniform } from '@perseus/planner';
import type { DeviceActivity, DeviceInfo, GpuBackend } from '../backend';
import type { ProfileTable, SimulatedModel } from '../profile-table';
import { loadProfileTable } from '../profile-table';
import type { PersistedState, StateFile } from '../state-file';

export interface SimulatedBackendOptions {
  /** GPU model whose profile drives time and power. Default `a100-sxm`. */
  model?: SimulatedModel;
  /** Number of devices. Default 8. */
  count?: number;
  /** Directory of the stage-profile CSVs (default: the repo's data/sosp24/stage_profile; embedded fallback). */
  profileDir?: string;
  /** Pre-loaded table (overrides model/profileDir). */
  table?: ProfileTable;
  /** Where the simulated hardware registers persist (so a restarted agent sees a crash's leftovers). */
  stateFile?: StateFile;
  /** Artificial latency of every driver call, ms (to exercise the per-device worker). Default 0. */
  driverLatencyMs?: number;
  /**
   * Wall seconds per simulated second (default 1): the devices live on CLOCK_MONOTONIC divided by
   * this, the clock an emulated trainer with the same time scale stamps its hooks with, so a rank
   * that sleeps a quarter of each instruction's time (0.25) still measures — and draws energy over —
   * the profile's full time. Must equal the emulator's time scale (the agent refuses a client
   * clock that runs at another rate, see clock-offset.ts).
   */
  timeScale?: number;
  /** Monotonic clock, ns (overrides `timeScale`). Default process.hrtime.bigint. */
  clockNs?: () => bigint;
  /**
   * Energy counter update period, ms of the devices' clock (0 = exact, the default). Like NVML on
   * an H100/H200 (~100 ms), the counter then only shows a new value once per period (each device
   * at its own phase), and activity notes return no exact counter value: the agent sees only the
   * stepped readings.
   */
  counterPeriodMs?: number;
  /**
   * Relative standard deviation of the power of each constant-power segment (each instruction,
   * each idle gap), as measurement noise (0 = none, the default).
   */
  powerJitter?: number;
  /** Seed of the power jitter (deterministic noise). Default 1. */
  noiseSeed?: number;
}

/** CLOCK_MONOTONIC slowed down by `timeScale` wall seconds per simulated second, ns. */
export function scaledMonotonicClock(timeScale: number): () => bigint {
  if (!(timeScale > 0) || !Number.isFinite(timeScale))
    throw new Error(`simulated time scale must be a positive number, got ${timeScale}`);
  if (timeScale === 1) return () => process.hrtime.bigint();
  // Exact integer arithmetic: ns × 1e6 / round(scale × 1e6).
  const denominator = BigInt(Math.round(timeScale * 1e6));
  return () => (process.hrtime.bigint() * 1_000_000n) / denominator;
}

interface SimDevice {
  info: DeviceInfo;
  lockedSmClockMhz: number;
  memoryClockLocked: boolean;
  powerLimitW: number;
  activity: DeviceActivity | null;
  /**
   * The power timeline: constant-power segments, oldest first (the last one runs until now). A
   * late-arriving activity note rewrites the timeline from its (client) timestamp on, so the
   * simulated GPU computed exactly when the trainer did, however late the agent heard of it.
   */
  segments: PowerSegment[];
  /** Stepped counter: the phase of its steps, ns, and the last value it showed (never less). */
  counterPhaseNs: bigint;
  shownMj: number;
}

interface PowerSegment {
  tNs: bigint;
  /** Counter value at `tNs`, mJ. */
  energyMj: number;
  powerW: number;
}

/** How many segments of history a device keeps (older activity notes are clamped to the oldest). */
const MAX_SEGMENTS = 512;

/**
 * K simulated GPUs of one model. Power comes from the profile table: while an instruction runs
 * (see {@link GpuBackend.noteActivity}) the device draws energy/time of that (stage, instruction) at
 * the locked clock (max clock when unlocked), capped by the power limit; idle, it draws the model's
 * blocking power. The energy counter integrates that power over the devices' clock: real
 * (monotonic) time, or simulated time when an emulation runs scaled (`timeScale`).
 */
export class SimulatedBackend implements GpuBackend {
  readonly kind = 'simulated' as const;
  readonly table: ProfileTable;
  private readonly devs: SimDevice[];
  /** The devices' clock, ns: CLOCK_MONOTONIC scaled by the time scale (the agent times on it). */
  readonly clockNs: () => bigint;
  /** Wall seconds per simulated second. */
  readonly timeScale: number;
  private readonly latencyMs: number;
  private readonly stateFile: StateFile | undefined;
  /** Calls made, in order (tests assert on these). */
  readonly calls: string[] = [];
  /** Set while {@link holdDriverCalls} holds the driver. */
  private held: { promise: Promise<void> } | undefined;
  /** Stepped counter period, ns (0n = exact counter). */
  private readonly counterPeriodNs: bigint;
  private readonly powerJitter: number;
  private readonly uniform: () => number;

  constructor(opts: SimulatedBackendOptions = {}) {
    this.table = opts.table ?? loadProfileTable(opts.model ?? 'a100-sxm', opts.profileDir);
    this.timeScale = opts.timeScale ?? 1;
    this.clockNs = opts.clockNs ?? scaledMonotonicClock(this.timeScale);
    this.latencyMs = opts.driverLatencyMs ?? 0;
    const periodMs = opts.counterPeriodMs ?? 0;
    const jitter = opts.powerJitter ?? 0;
    if (!(periodMs >= 0 && periodMs <= 10_000))
      throw new Error(`simulated counter period must be 0-10000 ms, got ${periodMs}`);
    if (!(jitter >= 0 && jitter <= 0.5))
      throw new Error(`simulated power jitter must be 0-0.5, got ${jitter}`);
    this.counterPeriodNs = BigInt(Math.round(periodMs * 1e6));
    this.powerJitter = jitter;
    this.uniform = seededUniform(opts.noiseSeed ?? 1);
    const spec = this.table.spec;
    const count = opts.count ?? 8;
    const clocks = this.table.supportedSmClocksMhz();
    const now = this.clockNs();
    const saved = opts.stateFile;
    this.stateFile = saved;
    this.devs = Array.from({ length: count }, (_, index) => {
      const hex = index.toString(16).padStart(2, '0');
      const info: DeviceInfo = {
        index,
        uuid: `GPU-5170a7ed-0000-4000-8000-${spec.model
          .replace(/[^a-z0-9]/g, '')
          .padEnd(10, '0')
          .slice(0, 10)}${hex}`,
        pciBusId: `00000000:${hex}:00.0`,
        name: spec.name,
        supportedSmClocksMhz: clocks,
        supportedMemoryClocksMhz: spec.memoryClocksMhz,
        energyCounterAvailable: true,
        defaultPowerLimitW: spec.defaultPowerLimitW,
        powerLimitRangeW: spec.powerLimitRangeW,
      };
      const d: SimDevice = {
        info,
        lockedSmClockMhz: 0,
        memoryClockLocked: false,
        powerLimitW: spec.defaultPowerLimitW,
        activity: null,
        segments: [{ tNs: now, energyMj: 0, powerW: spec.blockingPowerW }],
        counterPhaseNs:
          this.counterPeriodNs > 0n
            ? BigInt(Math.floor(this.uniform() * Number(this.counterPeriodNs)))
            : 0n,
        shownMj: 0,
      };
      const sim = saved?.device(index).sim;
      if (sim) {
        // The "hardware" kept its registers while no agent ran, and kept drawing idle power.
        d.lockedSmClockMhz = sim.lockedSmClockMhz;
        d.memoryClockLocked = sim.memoryClockLocked;
        d.powerLimitW = sim.powerLimitW;
        const downS = Math.max(0, (Date.now() - sim.savedAtUnixMs) / 1000 / this.timeScale);
        d.segments[0]!.energyMj = sim.energyMj + spec.blockingPowerW * downS * 1000;
      }
      return d;
    });
    if (saved) {
      saved.addSnapshotter((s: PersistedState) => this.snapshot(s));
      saved.update(() => undefined, { sync: true });
    }
  }

  devices(): readonly DeviceInfo[] {
    return this.devs.map((d) => d.info);
  }

  private dev(index: number): SimDevice {
    const d = this.devs[index];
    if (!d) throw new Error(`simulated: no device ${index}`);
    return d;
  }

  private async driverCall(what: string): Promise<void> {
    this.calls.push(what);
    await this.held?.promise;
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
  }

  /**
   * Holds every driver call from now on until the returned function is called, so a test can keep
   * a device's queue full for as long as it needs, however fast or slow the machine is.
   */
  holdDriverCalls(): () => void {
    let release: () => void = () => undefined;
    const promise = new Promise<void>((resolve) => (release = resolve));
    const held = { promise };
    this.held = held;
    return () => {
      if (this.held === held) this.held = undefined;
      release();
    };
  }

  /**
   * Starts a new constant-power segment at `sinceNs` (default now; never later than now, never
   * before the kept history), with the power the device state gives, and drops any later segments:
   * they were computed before this (late) news. Returns the counter value where the segment starts.
   */
  private remark(d: SimDevice, sinceNs?: bigint): { tNs: bigint; energyMj: number } {
    const now = this.clockNs();
    let at = sinceNs ?? now;
    if (at > now) at = now;
    const first = d.segments[0]!;
    if (at < first.tNs) at = first.tNs;
    const energyMj = this.energyAt(d, at);
    while (d.segments.length > 0 && d.segments[d.segments.length - 1]!.tNs >= at) d.segments.pop();
    d.segments.push({ tNs: at, energyMj, powerW: this.noisy(this.powerOf(d)) });
    if (d.segments.length > MAX_SEGMENTS) d.segments.splice(0, d.segments.length - MAX_SEGMENTS);
    return { tNs: at, energyMj };
  }

  private powerOf(d: SimDevice): number {
    const spec = this.table.spec;
    if (d.activity === null) return spec.blockingPowerW;
    const mhz = d.lockedSmClockMhz === 0 ? spec.maxSmClockMhz : d.lockedSmClockMhz;
    const p = this.table.lookup(d.activity.stage, d.activity.instruction, mhz).powerW;
    // The profile is the truth at default settings; only a lowered power limit caps it.
    return d.powerLimitW < d.info.defaultPowerLimitW ? Math.min(d.powerLimitW, p) : p;
  }

  /** `powerW` with the configured relative jitter (Gaussian, Box–Muller; never negative). */
  private noisy(powerW: number): number {
    if (this.powerJitter === 0) return powerW;
    const g = Math.sqrt(-2 * Math.log(1 - this.uniform())) * Math.cos(2 * Math.PI * this.uniform());
    return Math.max(0, powerW * (1 + this.powerJitter * g));
  }

  /** Persists the registers (debounced), as real hardware would keep them across an agent crash. */
  private persist(): void {
    this.stateFile?.update(() => undefined);
  }

  /** Counter value at `tNs` on the current timeline (clamped to the kept history). */
  private energyAt(d: SimDevice, tNs: bigint): number {
    const segs = d.segments;
    let i = segs.length - 1;
    while (i > 0 && segs[i]!.tNs > tNs) i--;
    const seg = segs[i]!;
    return seg.energyMj + (seg.powerW * Math.max(0, Number(tNs - seg.tNs))) / 1e6;
  }

  async lockSmClock(index: number, mhz: number): Promise<void> {
    const d = this.dev(index);
    if (!d.info.supportedSmClocksMhz.includes(mhz))
      throw new Error(`simulated: ${mhz} MHz is not supported`);
    await this.driverCall(`lockSmClock(${index},${mhz})`);
    d.lockedSmClockMhz = mhz;
    this.remark(d);
    this.persist();
  }

  async resetSmClock(index: number): Promise<void> {
    const d = this.dev(index);
    await this.driverCall(`resetSmClock(${index})`);
    d.lockedSmClockMhz = 0;
    this.remark(d);
    this.persist();
  }

  async lockMemoryClockMax(index: number): Promise<void> {
    const d = this.dev(index);
    await this.driverCall(`lockMemoryClockMax(${index})`);
    d.memoryClockLocked = true;
    this.persist();
  }

  async resetMemoryClock(index: number): Promise<void> {
    const d = this.dev(index);
    await this.driverCall(`resetMemoryClock(${index})`);
    d.memoryClockLocked = false;
    this.persist();
  }

  async getPowerLimitW(index: number): Promise<number> {
    return this.dev(index).powerLimitW;
  }

  async setPowerLimitW(index: number, watts: number): Promise<void> {
    const d = this.dev(index);
    const [lo, hi] = d.info.powerLimitRangeW;
    if (watts < lo || watts > hi)
      throw new Error(`simulated: power limit ${watts} W outside [${lo}, ${hi}]`);
    await this.driverCall(`setPowerLimitW(${index},${watts})`);
    d.powerLimitW = watts;
    this.remark(d);
    this.persist();
  }

  async resetPowerLimit(index: number): Promise<void> {
    const d = this.dev(index);
    await this.driverCall(`resetPowerLimit(${index})`);
    d.powerLimitW = d.info.defaultPowerLimitW;
    this.remark(d);
    this.persist();
  }

  async readEnergyMj(index: number): Promise<number> {
    const d = this.dev(index);
    const now = this.clockNs();
    if (this.counterPeriodNs === 0n) return this.energyAt(d, now);
    // The value at the last step of this device's counter; never less than one shown before (a
    // late activity note may have revised the timeline below it), as a hardware counter.
    const p = this.counterPeriodNs;
    const stepNs = now - ((((now - d.counterPhaseNs) % p) + p) % p);
    d.shownMj = Math.max(d.shownMj, this.energyAt(d, stepNs));
    return d.shownMj;
  }

  async readPowerW(index: number): Promise<number> {
    const d = this.dev(index);
    return d.segments[d.segments.length - 1]!.powerW;
  }

  async readLockedSmClockMhz(index: number): Promise<number> {
    return this.dev(index).lockedSmClockMhz;
  }

  /** Whether the memory clock is locked (tests). */
  memoryClockLocked(index: number): boolean {
    return this.dev(index).memoryClockLocked;
  }

  noteActivity(
    index: number,
    activity: DeviceActivity | null,
    sinceNs?: bigint,
  ): { tNs: bigint; energyMj: number } | undefined {
    const d = this.dev(index);
    d.activity = activity;
    const mark = this.remark(d, sinceNs);
    // A stepped counter has no exact value at an event: the agent gets only the stepped readings.
    return this.counterPeriodNs === 0n ? mark : undefined;
  }

  private snapshot(s: PersistedState): void {
    const now = this.clockNs();
    for (const d of this.devs) {
      const key = String(d.info.index);
      const entry = s.devices[key] ?? { dirty: false };
      entry.sim = {
        lockedSmClockMhz: d.lockedSmClockMhz,
        memoryClockLocked: d.memoryClockLocked,
        powerLimitW: d.powerLimitW,
        energyMj: this.energyAt(d, now),
        savedAtUnixMs: Date.now(),
      };
      s.devices[key] = entry;
    }
  }

  async close(): Promise<void> {
    this.calls.push('close');
  }
}
