// The example of README.md ("Embedding"), kept as a test so the README cannot rot.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { parseProfileCsv } from '@perseus/planner';
import { perseusGrpc } from '@perseus/proto';
import type { optimizerV1 } from '@perseus/proto';
import { PerseusServer, createLogger } from '@perseus/service-kit';
import { createOptimizerModule } from '../src';
import { GPT3_A100_CSV } from './helpers';

test('README example: an imported profile skips the sweep and every rank gets its stage plan', async () => {
  // --- README example begins
  const logger = createLogger('optimizer');
  const profile = parseProfileCsv(
    readFileSync(
      GPT3_A100_CSV,
      'utf8',
    ) /* README: 'data/sosp24/stage_profile/gpt3-175b+a100_sxm_bf16.csv' */,
  );
  const mod = await createOptimizerModule({
    logger,
    dataDir: ':memory:',
    importedProfiles: [{ profile }],
  });
  const server = new PerseusServer({ address: '127.0.0.1:0', logger });
  for (const s of mod.services) server.addService(s);
  server.onShutdown(() => mod.close());
  const address = await server.start();
  await mod.onListening?.(address);

  const client = new (perseusGrpc().perseus.optimizer.v1.Optimizer)(
    address,
    grpc.credentials.createInsecure(),
  );
  const unary = <T>(
    method: 'RegisterJob' | 'RegisterRank' | 'GetJobStatus',
    req: object,
  ): Promise<T> =>
    new Promise((resolve, reject) =>
      (client[method] as unknown as (r: object, cb: (e: Error | null, r: T) => void) => void).call(
        client,
        req,
        (e, r) => (e ? reject(e) : resolve(r)),
      ),
    );

  await unary('RegisterJob', {
    job_id: 'gpt3',
    spec: {
      pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: 8, num_microbatches: 4 },
      dp_degree: 1,
      tp_degree: 1,
      world_size: 8,
      gpu_model: 'A100-SXM4',
      blocking_power_w: 83.64,
    },
  });
  const watch = client.WatchSchedule({ job_id: 'gpt3', rank: 7 });
  watch.on('error', () => undefined); // CANCELLED once we cancel it below
  const clocks = Array.from({ length: 38 }, (_, i) => 1410 - 15 * i); // A100: 1410 … 855 MHz
  for (let r = 0; r < 8; r++) {
    await unary('RegisterRank', {
      job_id: 'gpt3',
      rank: { rank: r, pp_rank: r },
      node: 'node0',
      device_index: r,
      supported_frequencies_mhz: clocks,
    });
  }
  const deployed = await new Promise<optimizerV1.Schedule__Output>((resolve) =>
    watch.on(
      'data',
      (s: optimizerV1.Schedule__Output) => s.phase === 'PHASE_DEPLOYED' && resolve(s),
    ),
  );
  // Stage 7 of 8, M = 4, 1F1B: F0 B0 F1 B1 F2 B2 F3 B3, each with its clock.
  console.log(
    deployed.reason,
    deployed.instructions
      .map((i) => `${i.instruction[17]}${i.microbatch}@${i.frequency_mhz}`)
      .join(' '),
  );
  const status = await unary<optimizerV1.GetJobStatusResponse__Output>('GetJobStatus', {
    job_id: 'gpt3',
  });
  console.log(`${status.phase}: predicted saving ${status.predicted_saving_percent.toFixed(1)} %`);
  watch.cancel();
  client.close();
  await server.shutdown();
  // --- README example ends

  expect(deployed.reason).toBe('intrinsic');
  expect(deployed.instructions.map((i) => `${i.instruction[17]}${i.microbatch}`)).toEqual([
    'F0',
    'B0',
    'F1',
    'B1',
    'F2',
    'B2',
    'F3',
    'B3',
  ]);
  expect(status.phase).toBe('PHASE_DEPLOYED');
  expect(status.predicted_saving_percent).toBeGreaterThan(10);
});
