/**
 * The main-thread side of the aggregation worker (aggregation-worker.ts): one worker per
 * file-backed store, requests answered in order. See the worker for why.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { AggregationOptions } from './aggregate';
import type { ProfileCell } from './types';

export interface DirtyKey {
  stage: number;
  instr: number;
  freq: number;
}

export interface AggregateRequest {
  id: number;
  jobKey: number;
  keys: DirtyKey[];
  tpDegree: number;
  options: AggregationOptions;
}

/** Fresh pooled and pipeline cells of one key, and the dirty stamp of the snapshot they cover. */
export interface AggregatedKey {
  key: DirtyKey;
  stamp: number;
  fresh: ProfileCell[];
}

export type AggregateReply =
  | { id: number; results: AggregatedKey[] }
  | { id: number; error: string };

const ENTRY = path.join(__dirname, 'aggregation-worker-entry.cjs');

export class AggregationThread {
  private readonly worker: Worker;
  private readonly pending = new Map<
    number,
    { resolve(r: AggregatedKey[]): void; reject(err: Error): void }
  >();
  private nextId = 1;
  private closed = false;
  /** Resolves once the worker runs (its module loading takes a moment). */
  readonly ready: Promise<void>;

  constructor(file: string) {
    this.worker = new Worker(ENTRY, { workerData: { file } });
    // Referenced only while it has work (starting up counts): idle, it never holds the process.
    this.ready = new Promise((resolve, reject) => {
      this.worker.once('online', () => {
        if (this.pending.size === 0) this.worker.unref();
        resolve();
      });
      this.worker.once('error', reject);
    });
    // Until a failure is awaited by someone, it only fails the pending requests.
    this.ready.catch(() => undefined);
    this.worker.on('message', (m: AggregateReply) => {
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      if ('error' in m) p.reject(new Error(`aggregation failed: ${m.error}`));
      else p.resolve(m.results);
    });
    const failAll = (err: Error): void => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', failAll);
    this.worker.on('exit', (code) => {
      if (!this.closed) failAll(new Error(`aggregation worker exited with code ${code}`));
    });
  }

  /** Aggregates `keys` of one job from a committed snapshot. */
  aggregate(req: Omit<AggregateRequest, 'id'>): Promise<AggregatedKey[]> {
    if (this.closed) return Promise.reject(new Error('aggregation worker is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({ ...req, id });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new Error('aggregation worker is closed'));
    this.pending.clear();
    await this.worker.terminate();
  }
}
