import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Frontier, PlannerInputError } from '@perseus/planner';
import type { FrontierJson, PlannerInput, PolishedPlan, StagePlan } from '@perseus/planner';

/** The certificate of a plan the worker polished (what crosses back besides the plan). */
export type PolishSummary = Omit<PolishedPlan, 'plan'>;

/** What the planning worker is asked to do. */
export type PlanWorkerRequest =
  | {
      id: number;
      type: 'plan';
      input: PlannerInput;
      /** Exact polish of the intrinsic plan (all-max time) within this many seconds; 0 = none. */
      polishBudgetS: number;
    }
  | ({ id: number; type: 'polish' } & PolishRequest);

/** Messages the planning worker posts back. */
export type PlanWorkerMessage =
  | { id: number; type: 'progress'; done: number; estTotal: number }
  | { id: number; type: 'polishing'; elapsedS: number; energyJ: number }
  | { id: number; type: 'done'; json: string; exact?: PolishSummary | undefined }
  | { id: number; type: 'polished'; result: PolishedPlan }
  | { id: number; type: 'error'; name: string; message: string; field?: string | undefined };

/** A computed frontier and its JSON text (what the store keeps). */
export interface PlannedFrontier {
  frontier: Frontier;
  json: string;
  /**
   * The exact polish of the intrinsic plan, when one was asked for and HiGHS ran: the frontier
   * holds the polished plan; this is its certificate.
   */
  exact?: PolishSummary | undefined;
}

/** A plan to polish exactly at a deadline (the planner's `polishPlan`), with what certifies it. */
export interface PolishRequest {
  input: PlannerInput;
  deadlineS: number;
  /** The frontier's plan at the deadline: the warm start, and what the result never exceeds. */
  plan: StagePlan[];
  /** LP relaxation's optimum at the deadline (`Frontier.lowerBoundJ`), J. */
  lpBoundJ: number;
  /** All-max energy, J: the reference of savings and gaps. */
  allMaxJ: number;
  /** Wall-clock cap of the polish, s. */
  budgetS: number;
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
    options?: { polishBudgetS?: number },
  ): Promise<PlannedFrontier>;
  /**
   * Polishes a deployed plan exactly at its deadline (a straggler's T′, a policy's target). An
   * abort drops a queued request and stops the worker (HiGHS with it) running it. Planners
   * without it (test doubles) deploy the frontier's plans as they are.
   */
  polish?(
    request: PolishRequest,
    onProgress?: (elapsedS: number, energyJ: number) => void,
    signal?: AbortSignal,
  ): Promise<PolishedPlan>;
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

/** A request with its caller's callbacks; `done` takes the worker's final message. */
interface Pending {
  request: PlanWorkerRequest;
  onMessage: (m: PlanWorkerMessage) => void;
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
    options: { polishBudgetS?: number } = {},
  ): Promise<PlannedFrontier> {
    const request: PlanWorkerRequest = {
      id: this.nextId++,
      type: 'plan',
      input,
      polishBudgetS: options.polishBudgetS ?? 0,
    };
    return this.submit<PlannedFrontier>(request, signal, (m, resolve, reject) => {
      if (m.type === 'progress') onProgress?.(m.done, m.estTotal);
      else if (m.type === 'done')
        frontierFromText(m.json).then((f) => resolve({ ...f, exact: m.exact }), reject);
    });
  }

  polish(
    req: PolishRequest,
    onProgress?: (elapsedS: number, energyJ: number) => void,
    signal?: AbortSignal,
  ): Promise<PolishedPlan> {
    const request: PlanWorkerRequest = { id: this.nextId++, type: 'polish', ...req };
    return this.submit<PolishedPlan>(request, signal, (m, resolve) => {
      if (m.type === 'polishing') onProgress?.(m.elapsedS, m.energyJ);
      else if (m.type === 'polished') resolve(m.result);
    });
  }

  /**
   * Queues `request`; `handle` sees each of its messages but errors and resolves the promise.
   * An abort drops it from the queue or stops the worker running it.
   */
  private submit<T>(
    request: PlanWorkerRequest,
    signal: AbortSignal | undefined,
    handle: (m: PlanWorkerMessage, resolve: (v: T) => void, reject: (e: Error) => void) => void,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new Error('planner closed'));
    if (signal?.aborted === true) return Promise.reject(new PlanAbortedError());
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => this.abort(p);
      const settle = (): void => signal?.removeEventListener('abort', onAbort);
      const ok = (v: T): void => {
        settle();
        resolve(v);
      };
      const fail = (e: Error): void => {
        settle();
        reject(e);
      };
      const p: Pending = {
        request,
        reject: fail,
        onMessage: (m) => {
          if (m.type === 'error')
            fail(
              m.name === 'PlannerInputError' && m.field !== undefined
                ? new PlannerInputError(m.field, m.message.slice(m.field.length + 1))
                : new Error(m.message),
            );
          else handle(m, ok, fail);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
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
    this.ensureWorker().postMessage(next.request);
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
    if (cur === undefined || cur.request.id !== m.id) return;
    if (m.type === 'done' || m.type === 'polished' || m.type === 'error') {
      // The worker is free: the next request starts while this one's result is handled.
      this.current = undefined;
      this.pump();
    }
    cur.onMessage(m);
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
