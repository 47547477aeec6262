/**
 * Body of the aggregation worker thread: its own read-only connection to the store's SQLite file
 * (WAL: it reads a committed snapshot while the main thread keeps committing), reads the TP groups
 * of each requested dirty cell and computes its pooled and pipeline cells. The main thread writes
 * the results in a short transaction. This keeps the long reads of big cells off the thread that
 * acknowledges measurements.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { aggregateTpGroups } from './aggregate';
import type { AggregateReply, AggregateRequest } from './aggregation-thread';
import { GROUPS_OF_CELL_SQL, readTpGroups } from './sqlite-schema';
import { instructionFromCode } from './types';

const port = parentPort;
if (port === null) throw new Error('aggregation-worker must run in a worker thread');
const { file } = workerData as { file: string };
const db = new Database(file, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
const stampOf = db
  .prepare('SELECT last_ms FROM dirty WHERE job = ? AND stage = ? AND instr = ? AND freq = ?')
  .pluck();
const groupsOfCell = db.prepare(GROUPS_OF_CELL_SQL).raw();

// One snapshot per cell: the dirty stamp and the rows it covers are read together.
const readCell = db.transaction(
  (job: number, k: { stage: number; instr: number; freq: number }) => {
    const stamp = stampOf.get(job, k.stage, k.instr, k.freq) as number | undefined;
    if (stamp === undefined) return undefined;
    const groups = readTpGroups(groupsOfCell, job, k);
    return { stamp, groups };
  },
);

port.on('message', (req: AggregateRequest) => {
  let reply: AggregateReply;
  try {
    const results: Extract<AggregateReply, { results: unknown }>['results'] = [];
    for (const k of req.keys) {
      const read = readCell(req.jobKey, k);
      if (read === undefined) continue;
      const key = {
        stage: k.stage,
        instruction: instructionFromCode(k.instr),
        frequencyMhz: k.freq,
      };
      results.push({
        key: k,
        stamp: read.stamp,
        fresh: aggregateTpGroups(read.groups, key, req.tpDegree, req.options),
      });
    }
    reply = { id: req.id, results };
  } catch (err) {
    reply = { id: req.id, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
});
