/**
 * The profiler's periodic work (background aggregation, raw-row retention): each task runs on its
 * own interval, but all of them run one at a time on one chain, so they never overlap each other.
 * Failures are logged and the chain goes on.
 */
import type { Logger } from '@perseus/service-kit';

export class MaintenanceTimers {
  private chain: Promise<unknown> = Promise.resolve();
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(private readonly logger: Logger) {}

  /** Runs `task` every `ms` (unref'd: timers never keep the process alive). */
  every(ms: number, task: () => Promise<unknown>): void {
    const t = setInterval(() => {
      this.chain = this.chain
        .then(task)
        .catch((err: unknown) => this.logger.error({ err }, 'profiler maintenance failed'));
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  /** Stops the timers and resolves once the task in progress (if any) is done. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
    await this.chain;
  }
}
