/**
 * Body of the planning worker thread: receives {@link PlanRequest}s, runs the planner, posts back
 * progress and the frontier as plain JSON (what crosses the thread boundary; the main thread
 * rebuilds it with `Frontier.fromJSON`).
 */
import { parentPort } from 'node:worker_threads';
import { computeFrontier } from '@perseus/planner';
import type { PlannerInput } from '@perseus/planner';
import type { PlanWorkerMessage } from './planner-pool';

interface PlanRequest {
  id: number;
  input: PlannerInput;
}

const port = parentPort;
if (port === null) throw new Error('planner-worker must run in a worker thread');

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
    post({ id: req.id, type: 'done', frontier: frontier.toJSON() });
  } catch (err) {
    const e = err as { name?: string; message?: string; field?: string };
    post({ id: req.id, type: 'error', name: e.name ?? 'Error', message: e.message ?? String(err), field: e.field });
  }
});
