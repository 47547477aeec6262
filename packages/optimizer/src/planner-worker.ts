/**
 * Body of the planning worker thread: receives {@link PlanWorkerRequest}s, runs the planner (and
 * the exact polish of deployed plans, HiGHS in this thread), posts back progress and results as
 * plain data (a frontier as JSON text; the main thread rebuilds it with `Frontier.fromJSON`).
 * Cancellation is the pool terminating this thread, which stops HiGHS mid-solve too.
 */
import * as os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import {
  computeFrontier,
  exactAtDeadline,
  highsMilpSolver,
  polishPlan,
  type HighsRuntimeLike,
  type MilpSolver,
} from '@perseus/planner';
import type { PlanWorkerMessage, PlanWorkerRequest, PolishSummary } from './planner-pool';

const port = parentPort;
if (port === null) throw new Error('planner-worker must run in a worker thread');

// Planning is background work: the RPC thread should win the CPU. On Linux the nice value is a
// per-thread attribute (setpriority(2), NOTES), so this lowers the priority of this thread only.
const nice = (workerData as { nice?: number } | null)?.nice ?? 0;
if (nice !== 0) {
  try {
    os.setPriority(nice);
  } catch {
    // not permitted or not supported: plan at normal priority
  }
}

let solver: Promise<MilpSolver> | undefined;

/** HiGHS (WASM, ~150 MiB) is loaded on the first polish, once per worker. */
function milpSolver(): Promise<MilpSolver> {
  solver ??= import('highs').then(async (m) =>
    highsMilpSolver((await m.default()) as HighsRuntimeLike),
  );
  return solver;
}

const post = (m: PlanWorkerMessage): void => port.postMessage(m);

/** Posts at most one message per 200 ms (the first at once: tests synchronise on it). */
function throttled(): (send: () => void) => void {
  let last = -Infinity;
  return (send) => {
    const now = Date.now();
    if (now - last < 200) return;
    last = now;
    send();
  };
}

async function handle(req: PlanWorkerRequest): Promise<void> {
  const every = throttled();
  const polishing = (p: { elapsedS: number; energyJ: number }): void =>
    every(() => post({ id: req.id, type: 'polishing', elapsedS: p.elapsedS, energyJ: p.energyJ }));
  if (req.type === 'polish') {
    const result = polishPlan(
      req.input,
      req.deadlineS,
      req.plan,
      { lpBoundJ: req.lpBoundJ, allMaxJ: req.allMaxJ },
      await milpSolver(),
      { timeLimitS: req.budgetS, onProgress: polishing },
    );
    post({ id: req.id, type: 'polished', result });
    return;
  }
  let frontier = computeFrontier(req.input, {
    onProgress: (done, estTotal) =>
      every(() => post({ id: req.id, type: 'progress', done, estTotal })),
  });
  let exact: PolishSummary | undefined;
  // Without HiGHS (not installed, failed to load) the frontier is deployed as planned.
  const exactSolver = req.polishBudgetS > 0 ? await milpSolver().catch(() => undefined) : undefined;
  if (exactSolver !== undefined) {
    const r = exactAtDeadline(frontier, req.input, frontier.allMax.timeS, exactSolver, {
      timeLimitS: req.polishBudgetS,
      onProgress: polishing,
    });
    frontier = r.frontier;
    const { deadlineS, timeS, energyJ, boundJ, boundSource, gapPp, savingPct, polish } = r;
    exact = { deadlineS, timeS, energyJ, boundJ, boundSource, gapPp, savingPct, polish };
  }
  // A string crosses the thread boundary as one copy; the main thread parses it in its own turn
  // and stores it as is, instead of structured-cloning and re-stringifying a 1.4 MB object.
  post({ id: req.id, type: 'done', json: JSON.stringify(frontier.toJSON()), exact });
}

port.on('message', (req: PlanWorkerRequest) => {
  handle(req).catch((err: unknown) => {
    const e = err as { name?: string; message?: string; field?: string };
    post({
      id: req.id,
      type: 'error',
      name: e.name ?? 'Error',
      message: e.message ?? String(err),
      field: e.field,
    });
  });
});
