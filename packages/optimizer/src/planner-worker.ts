/**
 * Body of the planning worker thread: receives {@link PlanRequest}s, runs the planner, posts back
 * progress and the frontier as plain JSON (what crosses the thread boundary; the main thread
 * rebuilds it with `Frontier.fromJSON`).
 */
import * as os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { computeFrontier } from '@perseus/planner';
import type { PlannerInput } from '@perseus/planner';
import type { PlanWorkerMessage } from './planner-pool';

interface PlanRequest {
  id: number;
  input: PlannerInput;
}

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

port.on('message', (req: PlanRequest) => {
  const post = (m: PlanWorkerMessage): void => port.postMessage(m);
  try {
    let last = 0;
    const frontier = computeFrontier(req.input, {
      onProgress: (done, estTotal) => {
        const now = Date.now();
        if (now - last < 200) return;
        last = now;
        post({ id: req.id, type: 'progress', done, estTotal });
      },
    });
    // A string crosses the thread boundary as one copy; the main thread parses it in its own turn
    // and stores it as is, instead of structured-cloning and re-stringifying a 1.4 MB object.
    post({ id: req.id, type: 'done', json: JSON.stringify(frontier.toJSON()) });
  } catch (err) {
    const e = err as { name?: string; message?: string; field?: string };
    post({
      id: req.id,
      type: 'error',
      name: e.name ?? 'Error',
      message: e.message ?? String(err),
      field: e.field,
    });
  }
});
