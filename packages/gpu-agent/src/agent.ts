import type { Logger } from '@perseus/service-kit';
import { AbortedError, UnavailableError, ValidationError } from '@perseus/service-kit';
import type { AuditLog, Caller } from './audit';
import type { DeviceInfo, GpuBackend } from './backend';
import { isUnsupportedDriverError } from './backend';
import { DeviceResetter } from './device-reset';
import type { DeviceSlot } from './device-slot';
import { newDeviceSlot } from './device-slot';
import type { DeviceView } from './device-view';
import { LatencyWindow } from './latency-window';
import { LeaseTable, leaseCaller } from './lease-table';
import type { SessionSink } from './session';
import { Session } from './session';
import type { StateFile } from './state-file';
import type {
  AdminResetValue,
  OpenSessionValue,
  RankIdentityValue,
  ReadEnergyValue,
  ResetClocksValue,
  SetClocksValue,
} from './validate';

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
  /** Driver operations queued per device before further ones are refused. Default 10,000. */
  driverQueueMax?: number;
  /**
   * Monotonic clock, ns (same clock as the clients' CLOCK_MONOTONIC on this host). Default: the
   * backend's clock, else CLOCK_MONOTONIC.
   */
  clockNs?: () => bigint;
}

/** The outcome of one device's AdminReset. */
export interface AdminResetResult {
  index: number;
  /** The lease the reset ended, if the device was leased. */
  endedLease: { jobId: string; rank: RankIdentityValue } | undefined;
  /** "ok" or the driver errors (including a clock that could not be read back). */
  result: string;
  /** SM clock locked after the reset, MHz (0 = default clocks, or unreadable: see `result`). */
  lockedSmClockMhz: number;
}

/** Whether a lease's job id is `jobId` or one of its steps (`<jobId>.<step>`: Slurm's slurm-42.0). */
export function jobMatches(leaseJobId: string, jobId: string): boolean {
  return leaseJobId === jobId || leaseJobId.startsWith(`${jobId}.`);
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

/**
 * The agent core: devices, leases, sessions, resets. No gRPC here — the service adapter feeds it
 * validated values and a {@link SessionSink}. Every driver call goes through the device's
 * {@link DeviceWorker}; nothing here awaits a driver call on the path of a stream event.
 */
export class GpuAgentCore {
  private readonly slots: DeviceSlot[];
  private readonly sessions = new Set<Session>();
  private readonly leases: LeaseTable;
  private readonly resetter: DeviceResetter;
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
    this.energySampleIntervalMs = opts.energySampleIntervalMs ?? 10;
    this.lockMemoryClock = opts.lockMemoryClock ?? true;
    this.clockNs = opts.clockNs ?? backend.clockNs ?? (() => process.hrtime.bigint());
    this.slots = backend.devices().map((info) => newDeviceSlot(info, opts.driverQueueMax));
    this.leases = new LeaseTable(stateFile, audit, this.stats, {
      defaultS: opts.leaseTtlDefaultS ?? 30,
      maxS: opts.leaseTtlMaxS ?? 300,
    });
    this.resetter = new DeviceResetter(backend, stateFile, logger, this.stats);
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

  /** Startup: resets whatever a previous agent left changed (see {@link DeviceResetter}). */
  async start(): Promise<{ reset: number[] }> {
    return { reset: await this.resetter.resetLeftovers(this.slots, this.audit) };
  }

  /** Device descriptions for ListDevices (locked clock and power limit read through the worker). */
  async listDevices(): Promise<DeviceView[]> {
    return Promise.all(this.slots.map((s) => this.describe(s)));
  }

  private async describe(s: DeviceSlot, leaseIdForHolder?: string): Promise<DeviceView> {
    const i = s.info.index;
    const [locked, limit] = await s.worker.run(async () => [
      await this.backend.readLockedSmClockMhz(i),
      await this.backend.getPowerLimitW(i),
    ]);
    const l = s.lease;
    return {
      info: s.info,
      backend: this.backend.kind,
      simulated: this.backend.kind === 'simulated',
      lockedSmClockMhz: locked,
      powerLimitW: limit,
      lease: l && {
        leaseId: leaseIdForHolder,
        jobId: l.jobId,
        rank: l.rank,
        expiresAtUnixMs: l.expiresAtUnixMs,
      },
    };
  }

  /**
   * Claims `open.deviceIndex` for (job, rank), bound to `caller`'s connection. Throws
   * FAILED_PRECONDITION naming the holder when the device is leased, UNAVAILABLE while shutting
   * down. Synchronous: the lease exists on return.
   */
  openSession(open: OpenSessionValue, caller: Caller, sink: SessionSink): Session {
    if (this.closing) throw new UnavailableError('agent is shutting down');
    const s = this.slot(open.deviceIndex);
    const lease = this.leases.claim(s, open, caller);
    s.clockChanges = 0;
    s.energy.clear();
    const session = new Session(this, s, lease, sink);
    lease.session = session;
    this.sessions.add(session);
    this.stats.sessionsOpened++;
    if (this.lockMemoryClock && !s.memoryLockUnsupported) this.lockMemoryClockMax(s);
    // A first energy sample, so the first instruction's start interpolates instead of clamping.
    s.worker.run(() => this.sampleEnergy(s)).catch(() => undefined);
    this.audit.record({
      who: leaseCaller(caller, lease),
      device: s.info.index,
      action: 'lease.open',
      value: `ttl ${lease.ttlS}s`,
      result: 'ok',
    });
    void this.describe(s, lease.leaseId).then(
      (device) => {
        if (!session.closed) sink.opened({ leaseId: lease.leaseId, device, leaseTtlS: lease.ttlS });
      },
      (err: unknown) => {
        this.logger.error({ err }, 'describe failed');
        void session.close('driver error', err);
      },
    );
    return session;
  }

  private lockMemoryClockMax(s: DeviceSlot): void {
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

  /** @internal Called by Session.close. */
  async releaseLease(session: Session, reason: string): Promise<void> {
    const s = session.slot;
    this.sessions.delete(session);
    if (!this.leases.release(s, session.lease)) return;
    const result = await this.resetter.reset(s, false);
    this.audit.record({
      who: leaseCaller(session.lease.caller, session.lease),
      device: s.info.index,
      action: 'lease.release',
      value: `${reason}; ${s.clockChanges} clock changes`,
      result,
    });
  }

  /** The device `leaseId` holds, checked against `caller`'s connection; renews the lease. */
  private leased(leaseId: string, deviceIndex: number, caller: Caller, action: string): DeviceSlot {
    const s = this.slot(deviceIndex);
    this.leases.authorize(s, leaseId, caller, action).session?.touch();
    return s;
  }

  /** Runs one driver call of a unary control RPC on the device worker, audited either way. */
  private async control(
    s: DeviceSlot,
    caller: Caller,
    action: string,
    value: number | undefined,
    op: () => Promise<void>,
    refused: string,
  ): Promise<void> {
    const who = leaseCaller(caller, s.lease);
    try {
      await s.worker.run(op);
    } catch (err) {
      this.stats.driverErrors++;
      this.audit.record({
        who,
        device: s.info.index,
        action,
        value,
        result: `error: ${String(err)}`,
      });
      throw new UnavailableError(refused);
    }
    this.audit.record({ who, device: s.info.index, action, value, result: 'ok' });
  }

  /** Locks the SM clock of a leased device; returns the clock now locked, MHz. */
  async setClocks(req: SetClocksValue, caller: Caller): Promise<number> {
    const s = this.leased(req.leaseId, req.deviceIndex, caller, 'clocks.set');
    await this.control(
      s,
      caller,
      'clocks.set',
      req.smClockMhz,
      async () => {
        await this.backend.lockSmClock(s.info.index, req.smClockMhz);
        if (s.appliedSmClockMhz !== req.smClockMhz) s.clockChanges++;
        s.appliedSmClockMhz = req.smClockMhz;
      },
      `driver refused ${req.smClockMhz} MHz on device ${s.info.index}`,
    );
    return req.smClockMhz;
  }

  async resetClocks(req: ResetClocksValue, caller: Caller): Promise<void> {
    const s = this.leased(req.leaseId, req.deviceIndex, caller, 'clocks.reset');
    await this.control(
      s,
      caller,
      'clocks.reset',
      undefined,
      async () => {
        await this.backend.resetSmClock(s.info.index);
        s.appliedSmClockMhz = 0;
      },
      `driver refused the reset of device ${s.info.index}`,
    );
  }

  /**
   * The privileged reset (the caller was authorised as admin): ends the session of every chosen
   * device that is leased (its client gets ABORTED), then resets SM clock, memory clock and power
   * limit as at startup, and reads the clock back. A job's devices are those it leases now plus
   * those the state file still marks dirty for it (a reset that failed, or one still running after
   * its client died: the new reset queues behind it on the device's worker).
   */
  async adminReset(req: AdminResetValue, caller: Caller): Promise<AdminResetResult[]> {
    if (this.closing) throw new UnavailableError('agent is shutting down; it resets every device');
    const t = req.target;
    const chosen = this.slots.filter((s) => {
      switch (t.kind) {
        case 'all':
          return true;
        case 'devices':
          return t.indices.includes(s.info.index);
        case 'job': {
          if (s.lease !== undefined) return jobMatches(s.lease.jobId, t.jobId);
          const persisted = this.stateFile.device(s.info.index);
          return persisted.dirty && persisted.lease !== undefined
            ? jobMatches(persisted.lease.jobId, t.jobId)
            : false;
        }
      }
    });
    const what = t.kind === 'job' ? `job ${t.jobId}` : t.kind === 'devices' ? 'devices' : 'all';
    const why = `admin reset (${what})${req.reason === '' ? '' : `: ${req.reason}`}`;
    return Promise.all(
      chosen.map(async (s): Promise<AdminResetResult> => {
        const held = s.lease;
        if (held?.session)
          await held.session.close(why, new AbortedError(`device ${s.info.index}: ${why}`));
        let result = await this.resetter.reset(s, true);
        let locked = 0;
        try {
          locked = await s.worker.run(() => this.backend.readLockedSmClockMhz(s.info.index));
        } catch (err) {
          const text = `cannot read the clock back: ${err instanceof Error ? err.message : String(err)}`;
          result = result === 'ok' ? `error: ${text}` : `${result}; ${text}`;
        }
        this.audit.record({
          who: leaseCaller(caller, held),
          device: s.info.index,
          action: 'reset.admin',
          value: why,
          result,
        });
        return {
          index: s.info.index,
          endedLease: held && { jobId: held.jobId, rank: held.rank },
          result,
          lockedSmClockMhz: locked,
        };
      }),
    );
  }

  async readEnergy(
    req: ReadEnergyValue,
  ): Promise<{ energyJ: number; powerW: number; timestampUnixNs: bigint }> {
    const s = this.slot(req.deviceIndex);
    const i = s.info.index;
    const [mj, w] = await s.worker.run(async () => [
      await this.backend.readEnergyMj(i),
      await this.backend.readPowerW(i),
    ]);
    return { energyJ: mj / 1000, powerW: w, timestampUnixNs: BigInt(Date.now()) * 1_000_000n };
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
   * the state file clean, closes the backend. Runs before the listener closes (reset first).
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
    const results = await Promise.all(this.slots.map((s) => this.resetter.reset(s, false)));
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

  /** @internal Samples the device's energy counter into its tracker (on the worker). */
  sampleEnergy(s: DeviceSlot): Promise<number> {
    return this.backend.readEnergyMj(s.info.index).then((mj) => {
      s.energy.add(this.clockNs(), mj);
      s.lastEnergyMj = mj;
      return mj;
    });
  }
}
