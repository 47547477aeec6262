// The optimizer plans on the profiler's MEAN energy per cell: per-instruction readings from a GPU
// energy counter that advances in coarse steps (~100 ms on an H200) are skewed, and their median
// understates what an iteration burns (the planner adds cell energies up).
import { GrpcProfileSource } from '@perseus/optimizer';
import { createProfilerModule } from '@perseus/profiler';
import { PerseusServer, createLogger } from '@perseus/service-kit';

test('GrpcProfileSource hands the planner mean energy and median time', async () => {
  const logger = createLogger('test', 'silent');
  const mod = await createProfilerModule({
    logger,
    config: { dataDir: ':memory:', aggregateIntervalMs: 0 },
  });
  const server = new PerseusServer({ address: '127.0.0.1:0', logger });
  for (const s of mod.services) server.addService(s);
  const address = await server.start();
  const source = new GrpcProfileSource(address);
  try {
    const job = {
      jobId: 'skew',
      pipeline: { schedule: '1f1b' as const, numStages: 1, numMicrobatches: 4 },
      dpDegree: 1,
      tpDegree: 1,
      supportedFrequenciesMhz: [1410],
    };
    await source.registerJob(job);
    // 11 iterations × 4 microbatches; the counter stepped during one microbatch in four: 10 J readings
    // three times, 70 J once (mean 25 J, median 10 J). Times are steady at 50 ms.
    const measurements = [];
    for (let it = 0; it < 11; it++)
      for (let mb = 0; mb < 4; mb++)
        measurements.push({
          rank: 0,
          dpRank: 0,
          ppRank: 0,
          tpRank: 0,
          instruction: 'forward' as const,
          microbatch: mb,
          chunk: 0,
          frequencyMhz: 1410,
          timeS: 0.05,
          energyJ: mb === 3 ? 70 : 10,
          iteration: it,
        });
    await mod.profiler.submitBatch({ jobId: 'skew', batchId: 'b0', measurements });
    const cells = await source.getProfile('skew');
    expect(cells).toHaveLength(1);
    expect(cells[0]).toMatchObject({ stage: 0, kind: 'forward', frequencyMhz: 1410, count: 40 });
    expect(cells[0]!.energyJ).toBeCloseTo(25, 9);
    expect(cells[0]!.timeS).toBeCloseTo(0.05, 12);
  } finally {
    source.close();
    await server.shutdown(1000);
    await mod.close?.();
  }
});
