import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '@perseus/service-kit';
import { Profiler, relativeStderr } from '../src/profiler';
import { SqliteProfileStore } from '../src/sqlite-store';
import type { JobSpec, Measurement } from '../src/types';
import { validateImportProfile } from '../src/validate';
import { syntheticMeasurements, toBatches } from './helpers';

const logger = createLogger('test', 'silent');
const job: JobSpec = {
  jobId: 'j1',
  schedule: '1f1b',
  numStages: 2,
  numChunks: 1,
  numMicrobatches: 4,
  dpDegree: 2,
  tpDegree: 2,
  supportedFrequenciesMhz: [],
  origin: 'register',
};
const ms = syntheticMeasurements({
  dp: 2,
  stages: 2,
  tp: 2,
  iterations: 10,
  microbatches: 4,
  frequencyMhz: 1410,
});

describe('SqliteProfileStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-profiler-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('uses WAL and the configured synchronous mode', async () => {
    const full = new SqliteProfileStore({ dataDir: dir });
    expect(fs.existsSync(path.join(dir, 'profiler.db'))).toBe(true);
    await full.close();
    const normal = new SqliteProfileStore({ dataDir: path.join(dir, 'n'), synchronous: 'normal' });
    await normal.close();
  });

  it('stores batches, recognises a retried batch id and a re-sent measurement', async () => {
    const store = new SqliteProfileStore({ dataDir: ':memory:' });
    await store.putJob(job);
    const [b0, b1] = toBatches('j1', ms, 100);
    expect(await store.commitBatches([b0!, b1!, b0!])).toEqual([
      { batchId: 'b-0', storedCount: 100, duplicate: false },
      { batchId: 'b-1', storedCount: 100, duplicate: false },
      { batchId: 'b-0', storedCount: 0, duplicate: true },
    ]);
    // The same measurements under a new batch id are not stored twice either.
    expect(await store.commitBatches([{ ...b1!, batchId: 'other' }])).toEqual([
      { batchId: 'other', storedCount: 0, duplicate: false },
    ]);
    expect((await store.stats()).rawRows).toBe(200);
    await store.close();
  });

  it('a failing batch stores nothing and does not affect the others in its group', async () => {
    const store = new SqliteProfileStore({ dataDir: ':memory:' });
    await store.putJob(job);
    const [b0, b1] = toBatches('j1', ms, 50);
    // NaN binds as NULL and violates NOT NULL on its 3rd row: the first two rows must roll back.
    const bad = {
      ...b1!,
      measurements: b1!.measurements.map((m, i) => (i === 2 ? { ...m, timeS: NaN } : m)),
    };
    const out = await store.commitBatches([
      bad,
      b0!,
      { jobId: 'nope', batchId: 'x', measurements: b0!.measurements },
    ]);
    expect('error' in out[0]!).toBe(true);
    expect(out[1]).toEqual({ batchId: 'b-0', storedCount: 50, duplicate: false });
    expect('error' in out[2]! && out[2].error.message).toBe('job nope not found');
    expect((await store.stats()).rawRows).toBe(50);
    // The failed batch id was not recorded: a corrected retry is stored.
    expect(await store.commitBatches([b1!])).toEqual([
      { batchId: 'b-1', storedCount: 50, duplicate: false },
    ]);
    await store.close();
  });

  it('background refresh takes quiet or long-dirty cells only; stats report the lag', async () => {
    let now = 10_000;
    const store = new SqliteProfileStore({ dataDir: ':memory:', now: () => now });
    const profiler = new Profiler({ store, logger, aggregateIntervalMs: 0 });
    await profiler.registerJob(job);
    const [b0, b1] = toBatches(
      'j1',
      ms.filter((m) => m.ppRank === 0),
      100,
    );
    await store.commitBatches([b0!]);
    now = 12_000;
    await store.commitBatches([b1!]);
    now = 13_000;
    expect(await store.stats()).toMatchObject({ dirtyCells: 1, oldestDirtyAgeS: 3 });
    // Still receiving (last write 12 s > 11.5 s) and not dirty for long: left alone.
    expect(
      await profiler.refreshAllDirty({ quietBeforeMs: 11_500, dirtySinceBeforeMs: 5_000 }),
    ).toBe(0);
    // Dirty since 10 s, before the 10.5 s lag bound: refreshed.
    expect(
      await profiler.refreshAllDirty({ quietBeforeMs: 11_500, dirtySinceBeforeMs: 10_500 }),
    ).toBe(1);
    expect(await store.stats()).toMatchObject({ dirtyCells: 0, oldestDirtyAgeS: 0 });
    await profiler.close();
  });

  it('retention: idle jobs with raw rows are listed; pruning keeps their aggregates', async () => {
    let now = 1_000;
    const store = new SqliteProfileStore({ dataDir: ':memory:', now: () => now });
    const profiler = new Profiler({ store, logger, aggregateIntervalMs: 0, now: () => now });
    await profiler.registerJob(job);
    await profiler.registerJob({ ...job, jobId: 'j2' });
    await Promise.all(toBatches('j1', ms, 200).map((b) => profiler.submitBatch(b)));
    now = 5_000;
    await Promise.all(toBatches('j2', ms, 200).map((b) => profiler.submitBatch(b)));
    expect(await store.jobsIdleSince(4_000)).toEqual(['j1']);
    const before = await profiler.getProfile({ jobId: 'j1', minCount: 0 });
    expect(await profiler.pruneRawMeasurements('j1')).toBe(ms.length);
    expect(await store.jobsIdleSince(4_000)).toEqual([]);
    expect(await profiler.getProfile({ jobId: 'j1', minCount: 0 })).toEqual(before);
    expect((await profiler.getRankCells('j1')).length).toBe(8);
    expect((await store.stats()).rawRows).toBe(ms.length);
    await profiler.close();
  });

  it('everything committed is there after reopening', async () => {
    const store = new SqliteProfileStore({ dataDir: dir });
    await store.putJob(job);
    await store.commitBatches(toBatches('j1', ms, 64));
    await store.close();
    const again = new SqliteProfileStore({ dataDir: dir });
    expect(await again.getJob('j1')).toEqual(job);
    expect((await again.stats()).rawRows).toBe(ms.length);
    expect(await again.commitBatches(toBatches('j1', ms, 64).slice(0, 1))).toEqual([
      { batchId: 'b-0', storedCount: 0, duplicate: true },
    ]);
    await again.close();
  });
});

describe('Profiler over the SQLite store', () => {
  it('aggregates on read, prunes raw rows keeping aggregates, merges later data', async () => {
    const store = new SqliteProfileStore({ dataDir: ':memory:' });
    const profiler = new Profiler({ store, logger, aggregateIntervalMs: 0 });
    await profiler.registerJob(job);
    const results = await Promise.all(toBatches('j1', ms, 100).map((b) => profiler.submitBatch(b)));
    expect(results.reduce((n, r) => n + r.storedCount, 0)).toBe(ms.length);
    const cells = await profiler.getProfile({ jobId: 'j1', minCount: 0 });
    // Pooled stage cells: 2 pipelines × 9 kept iterations × 4 microbatches; TP-combined energy 2 × 20 J.
    expect(cells.map((c) => [c.stage, c.count, c.rawCount, c.energyRobustJ])).toEqual([
      [0, 72, 80, 40],
      [1, 72, 80, 40],
    ]);
    expect(cells[1]!.timeRobustS).toBeCloseTo(0.055, 12);
    const pipe1 = await profiler.getProfile({ jobId: 'j1', minCount: 0, dpRank: 1 });
    expect(pipe1.map((c) => c.count)).toEqual([36, 36]);
    expect(await profiler.getProfile({ jobId: 'j1', minCount: 73 })).toEqual([]);

    expect(await profiler.pruneRawMeasurements('j1')).toBe(ms.length);
    expect((await store.stats()).rawRows).toBe(0);
    expect(await profiler.getProfile({ jobId: 'j1', minCount: 0 })).toEqual(cells);

    // 10 more iterations after pruning: their own warm-up is dropped, counts add up.
    const more = syntheticMeasurements({
      dp: 2,
      stages: 2,
      tp: 2,
      iterations: 10,
      microbatches: 4,
      frequencyMhz: 1410,
      firstIteration: 10,
    });
    await Promise.all(toBatches('j1', more, 100, 'c').map((b) => profiler.submitBatch(b)));
    const after = await profiler.getProfile({ jobId: 'j1', minCount: 0 });
    expect(after.map((c) => [c.count, c.rawCount])).toEqual([
      [144, 160],
      [144, 160],
    ]);
    expect(after[0]!.timeMeanS).toBeCloseTo(0.05, 12);
    await profiler.close();
  });

  it('coverage lists covered and missing clocks per stage and instruction', async () => {
    const store = new SqliteProfileStore({ dataDir: ':memory:' });
    const profiler = new Profiler({ store, logger, aggregateIntervalMs: 0 });
    await profiler.registerJob({ ...job, supportedFrequenciesMhz: [1395, 1410] });
    await Promise.all(toBatches('j1', ms, 500).map((b) => profiler.submitBatch(b)));
    const cov = await profiler.getCoverage({ jobId: 'j1', minCount: 0 });
    expect(cov.complete).toBe(false);
    expect(cov.entries).toEqual([
      {
        stage: 0,
        instruction: 'forward',
        coveredFrequenciesMhz: [1410],
        missingFrequenciesMhz: [1395],
      },
      {
        stage: 0,
        instruction: 'backward',
        coveredFrequenciesMhz: [],
        missingFrequenciesMhz: [1410, 1395],
      },
      {
        stage: 1,
        instruction: 'forward',
        coveredFrequenciesMhz: [1410],
        missingFrequenciesMhz: [1395],
      },
      {
        stage: 1,
        instruction: 'backward',
        coveredFrequenciesMhz: [],
        missingFrequenciesMhz: [1410, 1395],
      },
    ]);
    const strict = await profiler.getCoverage({ jobId: 'j1', minCount: 100 });
    expect(strict.entries[0]!.coveredFrequenciesMhz).toEqual([]);
    await profiler.close();
  });

  it('drains on close: queued batches are committed before the store closes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-profiler-'));
    try {
      const profiler = new Profiler({
        store: new SqliteProfileStore({ dataDir: dir }),
        logger,
        aggregateIntervalMs: 0,
      });
      await profiler.registerJob(job);
      const pending = toBatches('j1', ms, 10).map((b) => profiler.submitBatch(b));
      await profiler.close();
      const acked = (await Promise.all(pending)).reduce((n, r) => n + r.storedCount, 0);
      expect(acked).toBe(ms.length);
      await expect(profiler.submitBatch(toBatches('j1', ms, 10)[0]!)).rejects.toThrow(
        'shutting down',
      );
      const reopened = new SqliteProfileStore({ dataDir: dir });
      expect((await reopened.stats()).rawRows).toBe(ms.length);
      await reopened.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('GetProfile confidence filter (max relative standard error)', () => {
  // One stage, one GPU, 4 microbatches: 10 iterations at 1410 MHz with ±1 % time noise, then 10 at
  // 1005 MHz with ±30 % noise; energy is constant. Warm-up drops each window's first iteration, so
  // each cell keeps 36 samples: relative stderr ≈ 0.01 / 6 ≈ 0.17 % and 0.3 / 6 ≈ 5 %.
  const single: JobSpec = {
    jobId: 'c1',
    schedule: '1f1b',
    numStages: 1,
    numChunks: 1,
    numMicrobatches: 4,
    dpDegree: 1,
    tpDegree: 1,
    supportedFrequenciesMhz: [],
    origin: 'register',
  };
  const window = (mhz: number, first: number, base: number, noise: number): Measurement[] =>
    Array.from({ length: 40 }, (_, i) => ({
      rank: 0,
      dpRank: 0,
      ppRank: 0,
      tpRank: 0,
      instruction: 'forward' as const,
      microbatch: i % 4,
      chunk: 0,
      frequencyMhz: mhz,
      timeS: base * (1 + (i % 2 === 0 ? noise : -noise)),
      energyJ: 20,
      iteration: first + Math.floor(i / 4),
    }));

  it('keeps only cells known to the asked precision; imported cells always pass', async () => {
    const store = new SqliteProfileStore({ dataDir: ':memory:' });
    const profiler = new Profiler({ store, logger, aggregateIntervalMs: 0 });
    await profiler.registerJob(single);
    const ms = [...window(1410, 0, 0.05, 0.01), ...window(1005, 10, 0.07, 0.3)];
    await Promise.all(toBatches('c1', ms, 40).map((b) => profiler.submitBatch(b)));
    const all = await profiler.getProfile({ jobId: 'c1', minCount: 0 });
    expect(all.map((c) => [c.frequencyMhz, c.count])).toEqual([
      [1410, 36],
      [1005, 36],
    ]);
    const [steady, noisy] = all.map(relativeStderr);
    expect(steady).toBeCloseTo(0.01 / 6, 3);
    expect(noisy).toBeCloseTo(0.3 / 6, 2);
    expect(
      (await profiler.getProfile({ jobId: 'c1', minCount: 0, maxRelativeStderr: 0.02 })).map(
        (c) => c.frequencyMhz,
      ),
    ).toEqual([1410]);
    expect(
      (await profiler.getProfile({ jobId: 'c1', minCount: 0, maxRelativeStderr: 0.1 })).map(
        (c) => c.frequencyMhz,
      ),
    ).toEqual([1410, 1005]);
    expect(
      await profiler.getProfile({ jobId: 'c1', minCount: 0, maxRelativeStderr: 0.001 }),
    ).toEqual([]);
    // min_count and the confidence filter both apply.
    expect(
      await profiler.getProfile({ jobId: 'c1', minCount: 37, maxRelativeStderr: 0.1 }),
    ).toEqual([]);
    // An imported cell (count 1, no spread) is authoritative.
    await profiler.importProfile(
      validateImportProfile({
        job_id: 'c2',
        format: 'PROFILE_FORMAT_STAGE',
        csv: 'stage,instruction,frequency,time,energy\n0,forward,1410,0.05,20\n',
      } as never),
    );
    expect(
      (await profiler.getProfile({ jobId: 'c2', minCount: 0, maxRelativeStderr: 0.001 })).map(
        (c) => [c.frequencyMhz, c.imported],
      ),
    ).toEqual([[1410, true]]);
    await profiler.close();
  });

  it('a cell with one sample has no error estimate and fails any filter', () => {
    expect(
      relativeStderr({ count: 1, timeMeanS: 1, timeStddevS: 0, energyMeanJ: 1, energyStddevJ: 0 }),
    ).toBe(Infinity);
    expect(
      relativeStderr({
        count: 4,
        timeMeanS: 2,
        timeStddevS: 0.4,
        energyMeanJ: 10,
        energyStddevJ: 3,
      }),
    ).toBeCloseTo(0.15, 12);
  });
});
