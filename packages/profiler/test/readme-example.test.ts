// The library example of the package README, run as written (on the sosp24 A100 profile).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createLogger } from '@perseus/service-kit';
import { Profiler, SqliteProfileStore, parseProfileCsv } from '../src/index';

const csvText = fs.readFileSync(
  path.resolve(__dirname, '../../../data/sosp24/stage_profile/gpt3-175b+a100_sxm_bf16.csv'),
  'utf8',
);

it('README library example', async () => {
  const profiler = new Profiler({
    store: new SqliteProfileStore({ dataDir: ':memory:' }),
    logger: createLogger('x', 'silent'),
  });
  await profiler.importProfile({
    jobId: 'gpt3',
    format: 'stage',
    rows: parseProfileCsv(csvText, 'stage'),
  });
  const cells = await profiler.getProfile({ jobId: 'gpt3', minCount: 0 });
  const csv = await profiler.exportProfile({ jobId: 'gpt3', format: 'stage', minCount: 0 });
  expect(cells).toHaveLength(608);
  expect(
    cells.filter((c) => c.stage === 7 && c.instruction === 'backward').map((c) => c.frequencyMhz),
  ).toEqual(Array.from({ length: 38 }, (_, i) => 1410 - 15 * i));
  expect(csv).toBe(csvText.replace(/\r\n/g, '\n'));
  await profiler.close();
});
