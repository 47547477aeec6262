import type { Logger } from '@perseus/service-kit';
import type { AgentStats } from './agent';
import type { AuditLog } from './audit';
import type { GpuBackend } from './backend';
import type { DeviceSlot } from './device-slot';
import type { StateFile } from './state-file';

/**
 * Returns devices to their defaults: after a lease, at shutdown, and at startup for whatever a
 * previous agent left changed. Every step runs on the device's worker (after anything queued), a
 * failing step does not stop the others, and only a device that reset cleanly and that nobody holds
 * is marked clean in the state file.
 */
export class DeviceResetter {
  constructor(
    private readonly backend: GpuBackend,
    private readonly stateFile: StateFile,
    private readonly logger: Logger,
    /** Counts resets done and driver calls that failed during them. */
    private readonly stats: Pick<AgentStats, 'resets' | 'driverErrors'>,
  ) {}

  /**
   * Resets the SM clock, and the memory clock and power limit when `everything` (startup) or when
   * the agent changed them. Returns "ok" or the error text.
   */
  async reset(s: DeviceSlot, everything: boolean): Promise<string> {
    const i = s.info.index;
    const errors: string[] = [];
    await s.worker.runAlways(async () => {
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
      // The agent never changes power limits; a previous agent's leftovers are reset at startup.
      if (everything) await step('resetPowerLimit', () => this.backend.resetPowerLimit(i));
      s.appliedSmClockMhz = 0;
      s.memoryLocked = false;
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

  /**
   * Startup: resets every device a previous agent may have left changed — marked dirty in the state
   * file, reporting a locked clock, or all of them when the state file is missing or unreadable.
   */
  async resetLeftovers(slots: readonly DeviceSlot[], audit: AuditLog): Promise<number[]> {
    const prev = this.stateFile.previous;
    const all = prev === undefined;
    const reset: number[] = [];
    for (const s of slots) {
      const persisted = prev?.devices[String(s.info.index)];
      let locked = 0;
      try {
        locked = await s.worker.run(() => this.backend.readLockedSmClockMhz(s.info.index));
      } catch (err) {
        this.logger.warn({ err, device: s.info.index }, 'cannot read locked clock at startup');
      }
      if (!all && !persisted?.dirty && locked === 0) continue;
      const result = await this.reset(s, true);
      reset.push(s.info.index);
      audit.record({
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
    return reset;
  }
}
