import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { agentV1 } from '@perseus/proto';
import type { Logger } from '@perseus/service-kit';
import {
  FailedPreconditionError,
  PerseusError,
  UnavailableError,
  ValidationError,
  toStreamError,
} from '@perseus/service-kit';
import type { AuditLog, Caller } from './audit';
import type { DeviceInfo, GpuBackend } from './backend';
import { isUnsupportedDriverError } from './backend';
import { DeviceWorker } from './device-worker';
import { EnergyTracker } from './energy-tracker';
import { LatencyWindow } from './latency-window';
import type { StateFile } from './state-file';
import type {
  BeginValue,
  EndValue,
  OpenSessionValue,
  RankIdentityValue,
  ReadEnergyValue,
  ResetClocksValue,
  SetClocksValue,
} from './validate';
import { validateSessionRequest } from './validate';

/** Tunables of the agent core (the module options add transport and files). */
export interface AgentCoreOptions {
  /** Lease TTL when the client asks for 0, seconds. Default 30. */
  leaseTtlDefaultS?: number;
  /** Longest lease TTL granted, seconds (requests above are capped). Default 300. */
  leaseTtlMaxS?: number;
  /** Energy sampling period while a session is active, ms. Default 10. */
  energySampleIntervalMs?: number;
  /** Lock the memory clock at its maximum for the lease's duration. Default true. */
  lockMemoryClock?: boolean;
  /** Monotonic clock, ns (same clock as the clients' CLOCK_MONOTONIC on this host). */
  clockNs?: () => bigint;
}

/** Where a session's responses go (the gRPC adapter binds it to the stream). */
export interface SessionSink {
  send(response: agentV1.SessionResponse): void;
  /** Ends the stream: OK without `err`, else with its status. Idempotent. */
  end(err?: unknown): void;
}

interface Lease {
  leaseId: string;
  jobId: string;
  rank: RankIdentityValue;
  ttlS: number;
  expiresAtUnixMs: number;
  session: Session | undefined;
  caller: Caller;
}

interface DeviceSlot {
  info: DeviceInfo;
  worker: DeviceWorker;
  energy: EnergyTracker;
  /** SM clock the agent has applied, MHz (0 = default). */
  appliedSmClockMhz: number;
  memoryLocked: boolean;
  /** The driver answered that this device cannot lock its memory clock: never asked again. */
  memoryLockUnsupported: boolean;
  powerLimitChanged: boolean;
  lease: Lease | undefined;
  clockChanges: number;
  lastEnergyMj: number;
}

/** Counters the metrics endpoint exposes. */
export interface AgentStats {
  sessionsOpened: number;
  sessionsDenied: number;
  leaseExpiries: number;
  resets: number;
  driverErrors: number;
  measurements: number;
  eventErrors: number;
  /** Client Begin timestamp → clock applied by the worker, seconds (same-host clients). */
  eventToApply: LatencyWindow;
  /** Client Begin timestamp → the agent received it (transport share of the above). */
  eventToReceive: LatencyWindow;
  /** Agent received the Begin → clock applied (the agent's own share: queue + driver call). */
  receiveToApply: LatencyWindow;
}

const SAME_CLOCK_WINDOW_NS = 10_000_000_000n;
const MAX_OPEN_BEGINS = 1024;

/**
 * The agent core: devices, leases, sessions, resets. No gRPC here — the service adapter feeds it
 * validated values and a {@link SessionSink}. Every driver call goes through the device's
 * {@link DeviceWorker}; nothing here awaits a driver call on the path of a stream event.
 */
export class GpuAgentCore {
  private readonly slots: DeviceSlot[];
  private readonly sessions = new Set<Session>();
  private closing = false;
  readonly stats: AgentStats = {
    sessionsOpened: 0,
    sessionsDenied: 0,
    leaseExpiries: 0,
    resets: 0,
    driverErrors: 0,
    measurements: 0,
    eventErrors: 0,
    eventToApply: new LatencyWindow(),
    eventToReceive: new LatencyWindow(),
    receiveToApply: new LatencyWindow(),
  };
  readonly leaseTtlDefaultS: number;
  readonly leaseTtlMaxS: number;
  readonly energySampleIntervalMs: number;
  readonly lockMemoryClock: boolean;
  readonly clockNs: () => bigint;

  constructor(
    readonly backend: GpuBackend,
    private readonly stateFile: StateFile,
    readonly logger: Logger,
    readonly audit: AuditLog,
    opts: AgentCoreOptions = {},
  ) {
    this.leaseTtlDefaultS = opts.leaseTtlDefaultS ?? 30;
    this.leaseTtlMaxS = opts.leaseTtlMaxS ?? 300;
    this.energySampleIntervalMs = opts.energySampleIntervalMs ?? 10;
    this.lockMemoryClock = opts.lockMemoryClock ?? true;
    this.clockNs = opts.clockNs ?? (() => process.hrtime.bigint());
    this.slots = backend.devices().map((info) => ({
      info,
      worker: new DeviceWorker(info.index),
      energy: new EnergyTracker(),
      appliedSmClockMhz: 0,
      memoryLocked: false,
      memoryLockUnsupported: false,
      powerLimitChanged: false,
      lease: undefined,
      clockChanges: 0,
      lastEnergyMj: 0,
    }));
  }

  /** Devices of the backend. */
  devices(): readonly DeviceInfo[] {
    return this.slots.map((s) => s.info);
  }

  private slot(index: number): DeviceSlot {
    const s = this.slots[index];
    if (!s) throw ValidationError.field('device_index', `no device ${index} on this node`);
    return s;
  }

  /**
   * Startup: resets every device a previous agent may have left changed — marked dirty in the state
   * file, reporting a locked clock, or all of them when the state file is missing or unreadable.
   */
  async start(): Promise<{ reset: number[] }> {
    const prev = this.stateFile.previous;
    const all = prev === undefined;
    const reset: number[] = [];
    for (const s of this.slots) {
      const persisted = prev?.devices[String(s.info.index)];
      let locked = 0;
      try {
        locked = await s.worker.run(() => this.backend.readLockedSmClockMhz(s.info.index));
      } catch (err) {
        this.logger.warn({ err, device: s.info.index }, 'cannot read locked clock at startup');
      }
      if (!all && !persisted?.dirty && locked === 0) continue;
      const result = await this.resetDevice(s, true);
      reset.push(s.info.index);
      this.audit.record({
        who: {
          peer: 'agent',
          identity: 'agent',
          jobId: persisted?.lease?.jobId,
          rank: persisted?.lease?.rank,
        },
        device: s.info.index,
        action: 'reset.startup',
        value: all
          ? this.stateFile.loadError
            ? `state file unreadable: ${this.stateFile.loadError}`
            : 'no state file'
          : `left by pid ${prev.pid}${prev.cleanShutdown ? '' : ' (crashed)'}, locked ${locked} MHz`,
        result,
      });
    }
    this.stateFile.update(() => undefined, { sync: true });
    if (prev && !prev.cleanShutdown)
      this.logger.warn(
        { previousPid: prev.pid, reset },
        'previous agent did not shut down cleanly',
      );
    return { reset };
  }

  /** Resets clocks, memory clock and power limit of one device. Returns "ok" or the error text. */
  private async resetDevice(s: DeviceSlot, everything: boolean): Promise<string> {
    const i = s.info.index;
    const errors: string[] = [];
    await s.worker.run(async () => {
      const step = async (what: string, fn: () => Promise<void>): Promise<void> => {
        try {
          await fn();
        } catch (err) {
          this.stats.driverErrors++;
          errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
        }
      };
      this.backend.noteActivity?.(i, null);
      await step('resetSmClock', () => this.backend.resetSmClock(i));
      if (everything || s.memoryLocked)
        await step('resetMemoryClock', () => this.backend.resetMemoryClock(i));
      if (everything || s.powerLimitChanged)
        await step('resetPowerLimit', () => this.backend.resetPowerLimit(i));
      s.appliedSmClockMhz = 0;
      s.memoryLocked = false;
      s.powerLimitChanged = false;
    });
    this.stats.resets++;
    // Only a device nobody holds is clean: a new lease may have been granted while this reset queued.
    if (errors.length === 0 && s.lease === undefined) {
      this.stateFile.update(
        (st) => {
          const d = st.devices[String(i)] ?? { dirty: false };
          d.dirty = false;
          delete d.lease;
          st.devices[String(i)] = d;
        },
        { sync: true },
      );
    }
    if (errors.length > 0) this.logger.error({ device: i, errors }, 'device reset failed');
    return errors.length === 0 ? 'ok' : `error: ${errors.join('; ')}`;
  }

  /** Device descriptions for ListDevices (locked clock and power limit read through the worker). */
  async listDevices(): Promise<agentV1.Device[]> {
    return Promise.all(this.slots.map((s) => this.describe(s)));
  }

  private async describe(s: DeviceSlot, leaseIdForHolder?: string): Promise<agentV1.Device> {
    const i = s.info.index;
    const [locked, limit] = await s.worker.run(async () => [
      await this.backend.readLockedSmClockMhz(i),
      await this.backend.getPowerLimitW(i),
    ]);
    const l = s.lease;
    return {
      index: i,
      uuid: s.info.uuid,
      pci_bus_id: s.info.pciBusId,
      name: s.info.name,
      backend: backendEnum(this.backend.kind),
      supported_sm_clocks_mhz: [...s.info.supportedSmClocksMhz],
      supported_memory_clocks_mhz: [...s.info.supportedMemoryClocksMhz],
      energy_counter_available: s.info.energyCounterAvailable,
      locked_sm_clock_mhz: locked,
      power_limit_w: limit,
      lease: l
        ? {
            lease_id: leaseIdForHolder ?? '',
            job_id: l.jobId,
            rank: {
              rank: l.rank.rank,
              dp_rank: l.rank.dpRank,
              pp_rank: l.rank.ppRank,
              tp_rank: l.rank.tpRank,
            },
            expires_at_unix_ms: String(l.expiresAtUnixMs),
          }
        : null,
    };
  }

  /**
   * Claims `open.deviceIndex` for (job, rank). Throws FAILED_PRECONDITION naming the holder when the
   * device is leased, UNAVAILABLE while shutting down. Synchronous: the lease exists on return.
   */
  openSession(open: OpenSessionValue, caller: Caller, sink: SessionSink): Session {
    if (this.closing) throw new UnavailableError('agent is shutting down');
    const s = this.slot(open.deviceIndex);
    const who = { ...caller, jobId: open.jobId, rank: open.rank.rank };
    if (s.lease) {
      const h = s.lease;
      this.stats.sessionsDenied++;
      const holder = `job ${JSON.stringify(h.jobId)} rank ${h.rank.rank} (pp ${h.rank.ppRank}, dp ${h.rank.dpRank}, tp ${h.rank.tpRank})`;
      this.audit.record({
        who,
        device: s.info.index,
        action: 'lease.deny',
        result: `held by ${holder}`,
      });
      throw new FailedPreconditionError(
        `device ${s.info.index} is leased by ${holder} until ${new Date(h.expiresAtUnixMs).toISOString()} unless renewed`,
      );
    }
    const ttlS = Math.min(
      open.leaseTtlS === 0 ? this.leaseTtlDefaultS : open.leaseTtlS,
      this.leaseTtlMaxS,
    );
    const lease: Lease = {
      leaseId: randomUUID(),
      jobId: open.jobId,
      rank: open.rank,
      ttlS,
      expiresAtUnixMs: Date.now() + ttlS * 1000,
      session: undefined,
      caller,
    };
    // Write-ahead: the device is marked dirty on disk before anything is changed on it.
    this.stateFile.update(
      (st) => {
        const d = st.devices[String(s.info.index)] ?? { dirty: false };
        d.dirty = true;
        d.lease = { jobId: lease.jobId, rank: lease.rank.rank, leaseId: lease.leaseId };
        st.devices[String(s.info.index)] = d;
      },
      { sync: true },
    );
    s.lease = lease;
    s.clockChanges = 0;
    s.energy.clear();
    const session = new Session(this, s, lease, sink);
    lease.session = session;
    this.sessions.add(session);
    this.stats.sessionsOpened++;
    if (this.lockMemoryClock && !s.memoryLockUnsupported) {
      s.worker
        .run(async () => {
          await this.backend.lockMemoryClockMax(s.info.index);
          s.memoryLocked = true;
        })
        .catch((err: unknown) => {
          if (isUnsupportedDriverError(err)) {
            s.memoryLockUnsupported = true;
            this.logger.info(
              { device: s.info.index },
              'this device cannot lock its memory clock; SM clocks only from now on',
            );
            return;
          }
          this.stats.driverErrors++;
          this.logger.warn(
            { err, device: s.info.index },
            'memory clock lock failed; continuing with SM clocks only',
          );
        });
    }
    // A first energy sample, so the first instruction's start interpolates instead of clamping.
    s.worker.run(() => this.sampleEnergy(s)).catch(() => undefined);
    this.audit.record({
      who,
      device: s.info.index,
      action: 'lease.open',
      value: `ttl ${ttlS}s`,
      result: 'ok',
    });
    void this.describe(s, lease.leaseId).then(
      (device) => {
        if (!session.closed)
          sink.send({ opened: { lease_id: lease.leaseId, device, lease_ttl_s: ttlS } });
      },
      (err: unknown) => {
        this.logger.error({ err }, 'describe failed');
        void session.close('driver error', err);
      },
    );
    return session;
  }

  /** @internal Called by Session.close. */
  async releaseLease(session: Session, reason: string): Promise<void> {
    const s = session.slot;
    this.sessions.delete(session);
    if (s.lease !== session.lease) return;
    s.lease = undefined;
    const result = await this.resetDevice(s, false);
    this.audit.record({
      who: { ...session.lease.caller, jobId: session.lease.jobId, rank: session.lease.rank.rank },
      device: s.info.index,
      action: 'lease.release',
      value: `${reason}; ${s.clockChanges} clock changes`,
      result,
    });
  }

  private leaseFor(
    leaseId: string,
    deviceIndex: number,
    caller: Caller,
    action: string,
  ): DeviceSlot {
    const s = this.slot(deviceIndex);
    if (s.lease?.leaseId !== leaseId) {
      const h = s.lease;
      const result = h
        ? `held by job ${JSON.stringify(h.jobId)} rank ${h.rank.rank}`
        : 'not leased';
      this.audit.record({ who: caller, device: deviceIndex, action, result: `denied: ${result}` });
      throw new FailedPreconditionError(
        h
          ? `lease_id does not hold device ${deviceIndex}: it is leased by job ${JSON.stringify(h.jobId)} rank ${h.rank.rank}`
          : `lease_id does not hold device ${deviceIndex}: the device is not leased (open a session first)`,
      );
    }
    s.lease.session?.touch();
    return s;
  }

  async setClocks(req: SetClocksValue, caller: Caller): Promise<agentV1.SetClocksResponse> {
    const s = this.leaseFor(req.leaseId, req.deviceIndex, caller, 'clocks.set');
    const who = { ...caller, jobId: s.lease?.jobId, rank: s.lease?.rank.rank };
    try {
      await s.worker.run(async () => {
        await this.backend.lockSmClock(s.info.index, req.smClockMhz);
        if (s.appliedSmClockMhz !== req.smClockMhz) s.clockChanges++;
        s.appliedSmClockMhz = req.smClockMhz;
      });
    } catch (err) {
      this.stats.driverErrors++;
      this.audit.record({
        who,
        device: s.info.index,
        action: 'clocks.set',
        value: req.smClockMhz,
        result: `error: ${String(err)}`,
      });
      throw new PerseusError(
        status.UNAVAILABLE,
        `driver refused ${req.smClockMhz} MHz on device ${s.info.index}`,
      );
    }
    this.audit.record({
      who,
      device: s.info.index,
      action: 'clocks.set',
      value: req.smClockMhz,
      result: 'ok',
    });
    return { applied_sm_clock_mhz: req.smClockMhz };
  }

  async resetClocks(req: ResetClocksValue, caller: Caller): Promise<agentV1.ResetClocksResponse> {
    const s = this.leaseFor(req.leaseId, req.deviceIndex, caller, 'clocks.reset');
    const who = { ...caller, jobId: s.lease?.jobId, rank: s.lease?.rank.rank };
    try {
      await s.worker.run(async () => {
        await this.backend.resetSmClock(s.info.index);
        s.appliedSmClockMhz = 0;
      });
    } catch (err) {
      this.stats.driverErrors++;
      this.audit.record({
        who,
        device: s.info.index,
        action: 'clocks.reset',
        result: `error: ${String(err)}`,
      });
      throw new PerseusError(
        status.UNAVAILABLE,
        `driver refused the reset of device ${s.info.index}`,
      );
    }
    this.audit.record({ who, device: s.info.index, action: 'clocks.reset', result: 'ok' });
    return {};
  }

  async readEnergy(req: ReadEnergyValue): Promise<agentV1.ReadEnergyResponse> {
    const s = this.slot(req.deviceIndex);
    const i = s.info.index;
    const [mj, w] = await s.worker.run(async () => [
      await this.backend.readEnergyMj(i),
      await this.backend.readPowerW(i),
    ]);
    return {
      energy_j: mj / 1000,
      power_w: w,
      timestamp_unix_ns: String(BigInt(Date.now()) * 1_000_000n),
    };
  }

  /** Current per-device view for /metrics (no driver calls: last values seen by the worker). */
  metricsSnapshot(): Array<{
    index: number;
    uuid: string;
    lockedSmClockMhz: number;
    energyJ: number;
    leased: boolean;
    queueDepth: number;
    clockChanges: number;
  }> {
    return this.slots.map((s) => ({
      index: s.info.index,
      uuid: s.info.uuid,
      lockedSmClockMhz: s.appliedSmClockMhz,
      energyJ: s.lastEnergyMj / 1000,
      leased: s.lease !== undefined,
      queueDepth: s.worker.depth,
      clockChanges: s.clockChanges,
    }));
  }

  /** Refreshes the cached energy of every device (used by the metrics endpoint before a scrape). */
  async refreshEnergy(timeoutMs = 500): Promise<void> {
    const reads = this.slots.map((s) =>
      s.worker
        .run(() => this.backend.readEnergyMj(s.info.index))
        .then((mj) => {
          s.lastEnergyMj = mj;
        })
        .catch(() => undefined),
    );
    await Promise.race([Promise.all(reads), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  /** Active sessions (tests, metrics). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Shutdown: refuses new sessions, ends every session with UNAVAILABLE, resets every device, marks
   * the state file clean, closes the backend. Runs before the listener closes (DESIGN: reset first).
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const closing = [...this.sessions].map((sess) =>
      sess.close(
        'agent shutting down',
        new UnavailableError('agent is shutting down; device reset to defaults'),
      ),
    );
    await Promise.all(closing);
    const results = await Promise.all(this.slots.map((s) => this.resetDevice(s, false)));
    this.audit.record({
      who: { peer: 'agent', identity: 'agent' },
      device: 'all',
      action: 'reset.shutdown',
      result: results.every((r) => r === 'ok')
        ? 'ok'
        : results.filter((r) => r !== 'ok').join('; '),
    });
    if (results.every((r) => r === 'ok')) this.stateFile.markClean();
    else this.stateFile.flush();
    await this.backend.close();
  }

  /** @internal */
  sampleEnergy(s: DeviceSlot): Promise<number> {
    return this.backend.readEnergyMj(s.info.index).then((mj) => {
      s.energy.add(this.clockNs(), mj);
      s.lastEnergyMj = mj;
      return mj;
    });
  }
}

function backendEnum(kind: GpuBackend['kind']): agentV1.Backend {
  switch (kind) {
    case 'nvml':
      return 'BACKEND_NVML';
    case 'amdsmi':
      return 'BACKEND_AMDSMI';
    case 'simulated':
      return 'BACKEND_SIMULATED';
  }
}

interface OpenBegin {
  begin: BeginValue;
  /** Clock in force once the worker processed the Begin, MHz. */
  appliedMhz: number;
}

/** How long an End's measurement may wait for a stepped counter's next step, ms. */
const MAX_END_DEFER_MS = 300;

/** One OpenSession stream holding one lease. */
export class Session {
  closed = false;
  private lastSeq = 0;
  private readonly open = new Map<number, OpenBegin>();
  /** Client clock → agent clock offset, ns (0 when the client shares this host's CLOCK_MONOTONIC). */
  private offsetNs: bigint | undefined;
  private ttlTimer: NodeJS.Timeout;
  private sampleTimer: NodeJS.Timeout;
  private closePromise: Promise<void> | undefined;

  constructor(
    private readonly core: GpuAgentCore,
    /** @internal */ readonly slot: DeviceSlot,
    readonly lease: Lease,
    private readonly sink: SessionSink,
  ) {
    this.ttlTimer = setTimeout(() => this.expire(), lease.ttlS * 1000);
    this.ttlTimer.unref();
    this.sampleTimer = setInterval(() => {
      if (slot.worker.depth < 4)
        slot.worker.run(() => core.sampleEnergy(slot)).catch(() => undefined);
    }, core.energySampleIntervalMs);
    this.sampleTimer.unref();
  }

  get leaseId(): string {
    return this.lease.leaseId;
  }

  /** Any traffic renews the lease. */
  touch(): void {
    this.lease.expiresAtUnixMs = Date.now() + this.lease.ttlS * 1000;
    this.ttlTimer.refresh();
  }

  private expire(): void {
    this.core.stats.leaseExpiries++;
    this.core.logger.warn(
      { device: this.slot.info.index, jobId: this.lease.jobId, ttlS: this.lease.ttlS },
      'lease expired',
    );
    void this.close(
      `lease expired after ${this.lease.ttlS}s without traffic`,
      new PerseusError(
        status.ABORTED,
        `lease expired: no traffic for ${this.lease.ttlS} s; device ${this.slot.info.index} reset to defaults`,
      ),
    );
  }

  /**
   * Handles one stream message after the first. Invalid events are answered in-stream with a
   * SessionEventError (the session stays open, nothing applied).
   */
  handle(msg: agentV1.SessionRequest__Output): void {
    if (this.closed) return;
    const recvNs = this.core.clockNs();
    this.touch();
    let seq = 0;
    try {
      const ev = validateSessionRequest(msg, { first: false, device: this.slot.info });
      switch (ev.kind) {
        case 'open':
          return; // unreachable: validateSessionRequest rejects a second open
        case 'heartbeat':
          return;
        case 'begin':
          seq = ev.begin.seq;
          this.onBegin(ev.begin, recvNs);
          return;
        case 'end':
          seq = ev.end.seq;
          this.onEnd(ev.end, recvNs);
          return;
      }
    } catch (err) {
      this.reject(seq || seqOf(msg), err);
    }
  }

  private reject(seq: number, err: unknown): void {
    this.core.stats.eventErrors++;
    this.sink.send({
      error: { seq: String(seq), error: toStreamError(err, this.core.logger, 'session event') },
    });
  }

  private mapNs(clientNs: bigint, recvNs: bigint): bigint {
    if (this.offsetNs === undefined) {
      const diff = recvNs - clientNs;
      this.offsetNs = diff > -SAME_CLOCK_WINDOW_NS && diff < SAME_CLOCK_WINDOW_NS ? 0n : diff;
    } else if (this.offsetNs !== 0n && recvNs - clientNs < this.offsetNs) {
      // Another host's clock: the smallest receive-minus-send seen is the best offset estimate.
      this.offsetNs = recvNs - clientNs;
    }
    return clientNs + this.offsetNs;
  }

  private onBegin(b: BeginValue, recvNs: bigint): void {
    if (b.seq <= this.lastSeq)
      throw ValidationError.field(
        'begin.seq',
        `must be > ${this.lastSeq} (the previous seq), got ${b.seq}`,
      );
    this.lastSeq = b.seq;
    const tAgent = this.mapNs(b.tNs, recvNs);
    if (this.offsetNs === 0n) this.core.stats.eventToReceive.add(Number(recvNs - tAgent) / 1e9);
    const entry: OpenBegin = {
      begin: { ...b, tNs: tAgent },
      appliedMhz: this.slot.appliedSmClockMhz,
    };
    if (this.open.size >= MAX_OPEN_BEGINS) {
      const oldest = this.open.keys().next().value;
      if (oldest !== undefined) this.open.delete(oldest);
    }
    this.open.set(b.seq, entry);
    const s = this.slot;
    const core = this.core;
    const backend = core.backend;
    s.worker
      .run(async () => {
        if (this.closed) return;
        if (b.frequencyMhz !== s.appliedSmClockMhz) {
          try {
            if (b.frequencyMhz === 0) await backend.resetSmClock(s.info.index);
            else await backend.lockSmClock(s.info.index, b.frequencyMhz);
            s.appliedSmClockMhz = b.frequencyMhz;
            s.clockChanges++;
          } catch (err) {
            core.stats.driverErrors++;
            core.logger.warn(
              { err, device: s.info.index, mhz: b.frequencyMhz },
              'clock change failed',
            );
            this.sink.send({
              error: {
                seq: String(b.seq),
                error: {
                  code: status.UNAVAILABLE,
                  message: `driver refused ${b.frequencyMhz} MHz; clock stays ${s.appliedSmClockMhz} MHz`,
                  violations: [],
                },
              },
            });
          }
        }
        const appliedNs = core.clockNs();
        entry.appliedMhz = s.appliedSmClockMhz;
        // A simulated device computes from the client's timestamp at the clock it asked for (the
        // emulated trainer sleeps that clock's time), however late this Begin arrived; real devices
        // ignore the note.
        this.recordMark(
          backend.noteActivity?.(
            s.info.index,
            { stage: this.lease.rank.ppRank, instruction: b.instruction },
            tAgent,
          ),
        );
        if (this.offsetNs === 0n) core.stats.eventToApply.add(Number(appliedNs - tAgent) / 1e9);
        core.stats.receiveToApply.add(Number(appliedNs - recvNs) / 1e9);
        await core.sampleEnergy(s);
      })
      .catch((err: unknown) => this.reject(b.seq, err));
  }

  /** An exact counter sample a simulated device gave for a (late) activity note: it supersedes later samples. */
  private recordMark(mark: { tNs: bigint; energyMj: number } | void): void {
    if (mark) this.slot.energy.supersede(mark.tNs, mark.energyMj);
  }

  private onEnd(e: EndValue, recvNs: bigint): void {
    const entry = this.open.get(e.seq);
    if (!entry) throw ValidationError.field('end.seq', `no open Begin with seq ${e.seq}`);
    const tAgent = this.mapNs(e.tNs, recvNs);
    if (tAgent < entry.begin.tNs) {
      throw ValidationError.field(
        'end.t_ns',
        `must be ≥ the Begin's t_ns, got ${e.tNs} (${(Number(entry.begin.tNs - tAgent) / 1e6).toFixed(3)} ms earlier)`,
      );
    }
    this.open.delete(e.seq);
    const s = this.slot;
    const core = this.core;
    s.worker
      .run(async () => {
        this.recordMark(core.backend.noteActivity?.(s.info.index, null, tAgent));
        await core.sampleEnergy(s);
      })
      .then(async () => {
        // A stepped counter may not have moved since the End: wait (briefly, off the worker) until
        // the session's periodic sampler sees its next step, so the End's energy is interpolated,
        // not clamped to the last step.
        const maxDeferrals = Math.ceil(MAX_END_DEFER_MS / core.energySampleIntervalMs);
        for (let i = 0; i < maxDeferrals && !this.closed && !s.energy.knownAfter(tAgent); i++) {
          await new Promise((r) => setTimeout(r, core.energySampleIntervalMs));
        }
        if (this.closed) return;
        const e0 = s.energy.at(entry.begin.tNs);
        const e1 = s.energy.at(tAgent);
        const energyJ = e0 !== undefined && e1 !== undefined ? Math.max(0, e1 - e0) / 1000 : 0;
        core.stats.measurements++;
        this.sink.send({
          measurement: {
            seq: String(e.seq),
            instruction:
              entry.begin.instruction === 'forward'
                ? 'INSTRUCTION_KIND_FORWARD'
                : 'INSTRUCTION_KIND_BACKWARD',
            microbatch: entry.begin.microbatch,
            frequency_applied_mhz: entry.appliedMhz,
            time_s: Number(tAgent - entry.begin.tNs) / 1e9,
            energy_j: energyJ,
          },
        });
      })
      .catch((err: unknown) => this.reject(e.seq, err));
  }

  /**
   * Ends the session: releases the lease and resets the device (after queued events finish), then
   * ends the stream — OK for a client half-close, else with `err`'s status. Idempotent.
   */
  close(reason: string, err?: unknown): Promise<void> {
    if (this.closePromise) return this.closePromise;
    clearTimeout(this.ttlTimer);
    clearInterval(this.sampleTimer);
    this.closePromise = (async () => {
      // Defer the body: ending the stream emits events whose handlers call close() again, and they
      // must find this promise (so the first reason wins).
      await Promise.resolve();
      if (err !== undefined) {
        this.closed = true;
        this.sink.end(err);
      }
      await this.core.releaseLease(this, reason);
      this.closed = true;
      this.sink.end();
    })();
    return this.closePromise;
  }
}

function seqOf(msg: agentV1.SessionRequest__Output): number {
  const raw = msg.begin?.seq ?? msg.end?.seq;
  const n = Number(raw ?? 0);
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}
