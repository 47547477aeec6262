import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Frontier, PlannerInputError } from '@perseus/planner';
import type { FrontierJson, PlannerInput } from '@perseus/planner';

/** Messages the planning worker posts back. */
export type PlanWorkerMessage =
  | { id: number; type: 'progress'; done: number; estTotal: number }
  | { id: number; type: 'done'; json: string }
  | { id: number; type: 'error'; name: string; message: string; field?: string | undefined };

/** A computed frontier and its JSON text (what the store keeps). */
export interface PlannedFrontier {
  frontier: Frontier;
  json: string;
}

/** Something that computes frontiers off the caller's event loop. */
export interface FrontierPlanner {
  /**
   * Plans `input`. When `signal` aborts (the caller went away, its deadline passed) a queued
   * request is dropped and a running one is stopped; the promise rejects with a {@link PlanAbortedError}.
   */
  plan(
    input: PlannerInput,
    onProgress?: (done: number, estTotal: number) => void,
    signal?: AbortSignal,
  ): Promise<PlannedFrontier>;
  close(): Promise<void>;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Rebuilds a Frontier from its JSON text in two event-loop turns (parse, then index), so RPCs
 * queued meanwhile are served between the steps rather than after both.
 */
export async function frontierFromText(json: string): Promise<PlannedFrontier> {
  await nextTurn();
  const parsed = JSON.parse(json) as FrontierJson;
  await nextTurn();
  return { frontier: Frontier.fromJSON(parsed), json };
}

/** A planning request stopped because its caller aborted it. */
export class PlanAbortedError extends Error {
  constructor() {
    super('planning cancelled by its caller');
    this.name = 'PlanAbortedError';
  }
}

interface Pending {
  id: number;
  input: PlannerInput;
  onProgress: ((done: number, estTotal: number) => void) | undefined;
  resolve: (f: PlannedFrontier) => void;
  reject: (e: Error) => void;
}

const ENTRY = path.join(__dirname, 'planner-worker-entry.cjs');

/**
 * Runs the planner in one worker thread (docs/architecture.md §2: the planner runs in a worker thread inside
 * the optimizer), one frontier at a time, so gRPC handlers on the main thread stay responsive while a
 * large frontier (seconds of CPU) is computed. The worker is started on first use and restarted if
 * it dies; requests queue FIFO.
 */
export class WorkerFrontierPlanner implements FrontierPlanner {
  private worker: Worker | undefined;
  private readonly queue: Pending[] = [];
  private current: Pending | undefined;
  private nextId = 1;
  private closed = false;

  /** @param nice niceness of the planning thread (Linux: per thread; 0 = unchanged). Default 10. */
  constructor(private readonly nice = 10) {}

  plan(
    input: PlannerInput,
    onProgress?: (done: number, estTotal: number) => void,
    signal?: AbortSignal,
  ): Promise<PlannedFrontier> {
    if (this.closed) return Promise.reject(new Error('planner closed'));
    if (signal?.aborted === true) return Promise.reject(new PlanAbortedError());
    return new Promise<PlannedFrontier>((resolve, reject) => {
      const p: Pending = { id: this.nextId++, input, onProgress, resolve, reject };
      const onAbort = (): void => this.abort(p);
      signal?.addEventListener('abort', onAbort, { once: true });
      p.resolve = (f) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(f);
      };
      p.reject = (e) => {
        signal?.removeEventListener('abort', onAbort);
        reject(e);
      };
      this.queue.push(p);
      this.pump();
    });
  }

  /** Drops a queued request, or stops the worker running it (a fresh one takes the next). */
  private abort(p: Pending): void {
    const i = this.queue.indexOf(p);
    if (i >= 0) {
      this.queue.splice(i, 1);
      p.reject(new PlanAbortedError());
      return;
    }
    if (this.current !== p) return;
    this.current = undefined;
    const w = this.worker;
    this.worker = undefined;
    p.reject(new PlanAbortedError());
    if (w !== undefined) void w.terminate();
    this.pump();
  }

  private pump(): void {
    if (this.current !== undefined || this.closed) return;
    const next = this.queue.shift();
    if (next === undefined) return;
    this.current = next;
    this.ensureWorker().postMessage({ id: next.id, input: next.input });
  }

  private ensureWorker(): Worker {
    if (this.worker !== undefined) return this.worker;
    const w = new Worker(ENTRY, { workerData: { nice: this.nice } });
    w.on('message', (m: PlanWorkerMessage) => this.onMessage(m));
    w.on('error', (err) => this.onExit(err));
    w.on('exit', (code) => {
      if (this.worker === w) this.onExit(new Error(`planner worker exited with code ${code}`));
    });
    // The worker only holds the process open while it has work.
    w.unref();
    this.worker = w;
    return w;
  }

  private onMessage(m: PlanWorkerMessage): void {
    const cur = this.current;
    if (cur === undefined || cur.id !== m.id) return;
    switch (m.type) {
      case 'progress':
        cur.onProgress?.(m.done, m.estTotal);
        return;
      case 'done':
        this.current = undefined;
        frontierFromText(m.json).then(cur.resolve, cur.reject);
        this.pump();
        return;
      case 'error':
        this.current = undefined;
        cur.reject(
          m.name === 'PlannerInputError' && m.field !== undefined
            ? new PlannerInputError(m.field, m.message.slice(m.field.length + 1))
            : new Error(m.message),
        );
        this.pump();
        return;
    }
  }

  private onExit(err: Error): void {
    this.worker = undefined;
    const cur = this.current;
    this.current = undefined;
    cur?.reject(err);
    this.pump();
  }

  async close(): Promise<void> {
    this.closed = true;
    const err = new Error('planner closed');
    for (const p of this.queue.splice(0)) p.reject(err);
    const w = this.worker;
    this.worker = undefined;
    this.current?.reject(err);
    this.current = undefined;
    if (w !== undefined) await w.terminate();
  }
}
