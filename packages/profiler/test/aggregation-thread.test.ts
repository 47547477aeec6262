/**
 * Issue 13, reads under ingest: the SQLite store aggregates dirty cells in a worker thread with its
 * own read connection; the main thread only writes the results. Same cells as in-thread, and a cell
 * that received data after the worker's snapshot stays dirty.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '@perseus/service-kit';
import { aggregateRanks, aggregateTpGroups } from '../src/aggregate';
import { Profiler } from '../src/profiler';
import { SqliteProfileStore } from '../src/sqlite-store';
import type { CellAggregator } from '../src/store';
import type { JobSpec } from '../src/types';
import { syntheticMeasurements, toBatches } from './helpers';

const job: JobSpec = {
  jobId: 'j',
  schedule: '1f1b',
  numStages: 2,
  numChunks: 1,
  numMicrobatches: 4,
  dpDegree: 2,
  tpDegree: 2,
  supportedFrequenciesMhz: [],
  origin: 'register',
};
const opts = { warmupFraction: 0.1, outlierK: 3.5 };
const inThread: CellAggregator = {
  groups: (g, k, j) => aggregateTpGroups(g, k, j.tpDegree, opts),
  ranks: (r, k) => aggregateRanks(r, k, opts),
};
const viaWorker: CellAggregator = { ...inThread, options: opts };

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-agg-thread-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

async function filled(sub: string, worker: boolean): Promise<SqliteProfileStore> {
  const store = new SqliteProfileStore({
    dataDir: path.join(dir, sub),
    synchronous: 'normal',
    aggregationWorker: worker,
  });
  await store.ready();
  await store.putJob(job);
  const ms = syntheticMeasurements({
    dp: 2,
    stages: 2,
    tp: 2,
    iterations: 12,
    microbatches: 4,
    frequencyMhz: 1410,
  }).map((m, i) => ({ ...m, timeS: m.timeS * (1 + (i % 5) / 100) }));
  await store.commitBatches(toBatches('j', ms, 97));
  return store;
}

it('the worker computes the same cells as the main thread', async () => {
  const a = await filled('a', true);
  const b = await filled('b', false);
  try {
    expect(await a.refreshCells('j', viaWorker)).toBe(2);
    expect(await b.refreshCells('j', inThread)).toBe(2);
    const pooledA = await a.getCells('j', { scope: 'pooled' });
    expect(pooledA).toHaveLength(2);
    expect(pooledA).toEqual(await b.getCells('j', { scope: 'pooled' }));
    expect(await a.getCells('j', { scope: 'pipeline' })).toEqual(
      await b.getCells('j', { scope: 'pipeline' }),
    );
    expect((await a.stats()).dirtyCells).toBe(0);
  } finally {
    await a.close();
    await b.close();
  }
});

it('a commit after the worker read its snapshot keeps the cell dirty', async () => {
  const store = await filled('c', true);
  try {
    const refreshing = store.refreshCells('j', viaWorker);
    // Committed while the worker aggregates (it read, or will read, an older snapshot of one cell).
    const late = syntheticMeasurements({
      dp: 2,
      stages: 1,
      tp: 2,
      iterations: 1,
      microbatches: 4,
      frequencyMhz: 1410,
      firstIteration: 50,
    });
    await store.commitBatches(toBatches('j', late, 100, 'late'));
    await refreshing;
    // Either the worker saw the late rows (then the cell is clean and counts them) or it did not
    // (then the cell is still dirty): never clean without them.
    const stats = await store.stats();
    const stage0 = (await store.getCells('j', { scope: 'pooled' })).find((c) => c.stage === 0)!;
    if (stats.dirtyCells === 0) expect(stage0.rawCount).toBe(2 * 12 * 4 + 2 * 4);
    else expect(stats.dirtyCells).toBe(1);
    await store.refreshCells('j', viaWorker);
    const after = (await store.getCells('j', { scope: 'pooled' })).find((c) => c.stage === 0)!;
    expect(after.rawCount).toBe(2 * 12 * 4 + 2 * 4);
    expect((await store.stats()).dirtyCells).toBe(0);
  } finally {
    await store.close();
  }
});

it('a read waits at most readWaitMs for aggregation, then answers from what is aggregated', async () => {
  const store = await filled('d', true);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  // A store whose aggregation is stuck until released.
  const slow = Object.assign(Object.create(store) as SqliteProfileStore, {
    refreshCells: async (...args: Parameters<SqliteProfileStore['refreshCells']>) => {
      await gate;
      return store.refreshCells(...args);
    },
  });
  const profiler = new Profiler({
    store: slow,
    logger: createLogger('t', 'silent'),
    aggregateIntervalMs: 0,
    readWaitMs: 50,
  });
  try {
    // Nothing aggregated yet: the read answers (empty) instead of waiting for the stuck refresh.
    expect(await profiler.getProfile({ jobId: 'j', minCount: 0 })).toEqual([]);
    release();
    // Queued behind the background refresh in the worker: when it is done, both are.
    await profiler.refreshAllDirty();
    expect(await profiler.getProfile({ jobId: 'j', minCount: 0 })).toHaveLength(2);
  } finally {
    release();
    await profiler.close();
  }
});
