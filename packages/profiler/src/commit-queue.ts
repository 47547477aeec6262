/**
 * Group commit: batches from every stream wait in one queue and are written in as few durable
 * transactions as possible (one fsync per group with sync=full), at most `maxGroupMeasurements`
 * measurements per group. Each batch's promise settles once its group is committed.
 */
import type { Logger } from '@perseus/service-kit';
import type { BatchOutcome } from './store';
import type { BatchResult, MeasurementBatch } from './types';

interface Pending {
  batch: MeasurementBatch;
  enqueuedMs: number;
  resolve(r: BatchResult): void;
  reject(err: unknown): void;
}

/** Running totals of the ingest path (the metrics endpoint reads them). */
export interface CommitCounters {
  batchesStored: number;
  batchesDuplicate: number;
  batchesRejected: number;
  measurementsStored: number;
  groupCommits: number;
}

export class GroupCommitQueue {
  private queue: Pending[] = [];
  private queuedMeasurementsValue = 0;
  private flushing: Promise<void> | undefined;
  private readonly latencyListeners = new Set<(seconds: number) => void>();
  readonly counters: CommitCounters = {
    batchesStored: 0,
    batchesDuplicate: 0,
    batchesRejected: 0,
    measurementsStored: 0,
    groupCommits: 0,
  };

  constructor(
    private readonly options: {
      /** Writes one group durably; one outcome per batch, in order. */
      commit: (batches: readonly MeasurementBatch[]) => Promise<BatchOutcome[]>;
      maxGroupMeasurements: number;
      logger: Logger;
      now: () => number;
    },
  ) {}

  /** Batches waiting for the next group commit. */
  get queuedBatches(): number {
    return this.queue.length;
  }

  get queuedMeasurements(): number {
    return this.queuedMeasurementsValue;
  }

  /**
   * Calls `listener` with each committed batch's time in the queue, seconds (enqueue → durable
   * commit). Returns an unsubscribe function.
   */
  onCommitLatency(listener: (seconds: number) => void): () => void {
    this.latencyListeners.add(listener);
    return () => void this.latencyListeners.delete(listener);
  }

  /** Queues `batch`; resolves once it is durably committed (or rejects with its error). */
  push(batch: MeasurementBatch): Promise<BatchResult> {
    return new Promise<BatchResult>((resolve, reject) => {
      this.queue.push({ batch, enqueuedMs: this.options.now(), resolve, reject });
      this.queuedMeasurementsValue += batch.measurements.length;
      this.flushing ??= new Promise<void>((done) =>
        setImmediate(() => void this.flush().finally(done)),
      );
    });
  }

  /** Resolves once the queue is empty and no commit is running. */
  async drained(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private takeGroup(): Pending[] {
    let n = 0;
    let take = 0;
    while (
      take < this.queue.length &&
      (take === 0 ||
        n + this.queue[take]!.batch.measurements.length <= this.options.maxGroupMeasurements)
    ) {
      n += this.queue[take]!.batch.measurements.length;
      take++;
    }
    this.queuedMeasurementsValue -= n;
    return this.queue.splice(0, take);
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.takeGroup();
        try {
          const outcomes = await this.options.commit(group.map((p) => p.batch));
          this.counters.groupCommits++;
          const doneMs = this.options.now();
          outcomes.forEach((o, i) => this.settle(group[i]!, o, doneMs));
        } catch (err) {
          this.options.logger.error({ err, batches: group.length }, 'group commit failed');
          this.counters.batchesRejected += group.length;
          for (const p of group) p.reject(err);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private settle(p: Pending, o: BatchOutcome, doneMs: number): void {
    if ('error' in o) {
      this.counters.batchesRejected++;
      p.reject(o.error);
      return;
    }
    if (o.duplicate) this.counters.batchesDuplicate++;
    else this.counters.batchesStored++;
    this.counters.measurementsStored += o.storedCount;
    const latencyS = (doneMs - p.enqueuedMs) / 1000;
    for (const l of this.latencyListeners) l(latencyS);
    p.resolve(o);
  }
}
