import {
  AbortedError,
  FailedPreconditionError,
  UnavailableError,
  ValidationError,
} from '@perseus/service-kit';
import type { GpuAgentCore } from './agent';
import { ClientClock, ClockRateError } from './clock-offset';
import type { DeviceSlot } from './device-slot';
import type { DeviceView } from './device-view';
import type { Lease } from './lease-table';
import type { BeginValue, EndValue, InstructionName, SessionEventValue } from './validate';
import { MAX_INSTRUCTION_NS } from './validate';

/** The lease was granted (the adapter turns it into `SessionOpened`). */
export interface SessionOpenedValue {
  leaseId: string;
  device: DeviceView;
  leaseTtlS: number;
}

/** Time and energy of one instruction (the adapter turns it into `Measurement`). */
export interface MeasurementValue {
  seq: number;
  instruction: InstructionName;
  microbatch: number;
  /** The Begin's model chunk. */
  chunk: number;
  /** SM clock in force when the instruction began, MHz (0 = default clocks). */
  frequencyAppliedMhz: number;
  timeS: number;
  energyJ: number;
}

/** Where a session's results go; the gRPC adapter binds it to the stream. */
export interface SessionSink {
  opened(value: SessionOpenedValue): void;
  measurement(value: MeasurementValue): void;
  /** An event refused in-stream; the session stays open. `err` carries its status. */
  rejected(seq: number, err: unknown): void;
  /** Ends the stream: OK without `err`, else with its status. Idempotent. */
  end(err?: unknown): void;
}

interface OpenBegin {
  begin: BeginValue;
  /** Clock in force once the worker processed the Begin, MHz. */
  appliedMhz: number;
}

/**
 * The (virtual) stage a simulated device models for an instruction of `chunk`: chunk·N + pp_rank
 * under interleaved 1F1B when the session gave N, else the pp_rank.
 */
function virtualStage(lease: Lease, chunk: number): number {
  return lease.numStages > 0 ? chunk * lease.numStages + lease.rank.ppRank : lease.rank.ppRank;
}

/** How long an End's measurement may wait for a stepped counter's next step, ms. */
const MAX_END_DEFER_MS = 300;
/** Begins without an End kept per session; the oldest is dropped beyond. */
const MAX_OPEN_BEGINS = 1024;
/** A same-host client's timestamp may lead the agent's receipt by this much (scheduling skew). */
const FUTURE_TOLERANCE_NS = 1_000_000_000n;

/**
 * One OpenSession stream holding one lease: applies each Begin's clock on the device worker,
 * answers each End with a measurement from the energy samples, renews the lease on any traffic,
 * and ends (device reset) on close, expiry or shutdown.
 */
export class Session {
  closed = false;
  private lastSeq = 0;
  private readonly open = new Map<number, OpenBegin>();
  private readonly clock = new ClientClock();
  private readonly ttlTimer: NodeJS.Timeout;
  private readonly sampleTimer: NodeJS.Timeout;
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
      new AbortedError(
        `lease expired: no traffic for ${this.lease.ttlS} s; device ${this.slot.info.index} reset to defaults`,
      ),
    );
  }

  /**
   * Handles one validated event after the open, received at `recvNs` (agent clock). A refused
   * event is answered in-stream (the session stays open, nothing applied).
   */
  apply(ev: SessionEventValue, recvNs: bigint): void {
    if (this.closed) return;
    let seq = 0;
    try {
      switch (ev.kind) {
        case 'open':
          throw ValidationError.field('open', 'is allowed only as the first message of a session');
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
      if (err instanceof ClockRateError) {
        // No timestamp of this client can be placed on the device's clock: measuring on would
        // record receipt gaps as instruction times. End the session (device reset) and say why.
        this.core.stats.eventErrors++;
        this.core.logger.error(
          { device: this.slot.info.index, jobId: this.lease.jobId, err: err.message },
          'client clock runs at another rate; session ended',
        );
        void this.close('client clock rate', new FailedPreconditionError(err.message));
        return;
      }
      this.reject(seq, err);
    }
  }

  /** Refuses one event in-stream. */
  reject(seq: number, err: unknown): void {
    this.core.stats.eventErrors++;
    this.sink.rejected(seq, err);
  }

  /** A client timestamp on the agent's clock; refuses one from the future (same-host clients). */
  private agentTime(field: string, clientNs: bigint, recvNs: bigint): bigint {
    const t = this.clock.map(clientNs, recvNs);
    if (t - recvNs > FUTURE_TOLERANCE_NS) {
      throw ValidationError.field(
        field,
        `is ${(Number(t - recvNs) / 1e9).toExponential(3)} s after the agent received it; a client timestamp (CLOCK_MONOTONIC) cannot be in the future`,
      );
    }
    return t;
  }

  private onBegin(b: BeginValue, recvNs: bigint): void {
    if (b.seq <= this.lastSeq)
      throw ValidationError.field(
        'begin.seq',
        `must be > ${this.lastSeq} (the previous seq), got ${b.seq}`,
      );
    const tAgent = this.agentTime('begin.t_ns', b.tNs, recvNs);
    this.lastSeq = b.seq;
    const core = this.core;
    if (this.clock.sameHost) core.stats.eventToReceive.add(Number(recvNs - tAgent) / 1e9);
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
            this.sink.rejected(
              b.seq,
              new UnavailableError(
                `driver refused ${b.frequencyMhz} MHz; clock stays ${s.appliedSmClockMhz} MHz`,
              ),
            );
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
            { stage: virtualStage(this.lease, b.chunk), instruction: b.instruction },
            tAgent,
          ),
        );
        if (this.clock.sameHost) core.stats.eventToApply.add(Number(appliedNs - tAgent) / 1e9);
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
    const tAgent = this.agentTime('end.t_ns', e.tNs, recvNs);
    if (tAgent < entry.begin.tNs) {
      throw ValidationError.field(
        'end.t_ns',
        `must be ≥ the Begin's t_ns, got ${e.tNs} (${(Number(entry.begin.tNs - tAgent) / 1e6).toFixed(3)} ms earlier)`,
      );
    }
    if (tAgent - entry.begin.tNs > MAX_INSTRUCTION_NS) {
      throw ValidationError.field(
        'end.t_ns',
        `is ${(Number(tAgent - entry.begin.tNs) / 1e9).toExponential(3)} s after the Begin's t_ns; an instruction lasts at most ${Number(MAX_INSTRUCTION_NS) / 1e9} s`,
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
        this.sink.measurement({
          seq: e.seq,
          instruction: entry.begin.instruction,
          microbatch: entry.begin.microbatch,
          chunk: entry.begin.chunk,
          frequencyAppliedMhz: entry.appliedMhz,
          timeS: Number(tAgent - entry.begin.tNs) / 1e9,
          energyJ,
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
