/**
 * Job identity and lifecycle (issue 12 §1), through the real server: generations, spec hashes on
 * every schedule, refusal while old ranks are alive, list / show / delete, retention.
 */
import { status } from '@grpc/grpc-js';
import type { optimizerV1 } from '@perseus/proto';
import type { Harness } from './helpers';
import {
  Watch,
  call,
  failure,
  gpt3Profile,
  jobRequest,
  pollUntil,
  registerAll,
  startOptimizer,
  CLOCKS,
} from './helpers';

const RANK_TIMEOUT_MS = 60_000;

/** A server whose core reads a clock the test moves. */
async function start(
  extra: { finishedRetentionMs?: number } = {},
): Promise<{ h: Harness; clock: { ms: number } }> {
  const clock = { ms: 1_000_000 };
  const h = await startOptimizer({
    importedProfiles: [{ profile: gpt3Profile() }],
    rankTimeoutMs: RANK_TIMEOUT_MS,
    now: () => clock.ms,
    ...extra,
  });
  return { h, clock };
}

const register = (
  h: Harness,
  jobId: string,
  m: number,
): Promise<optimizerV1.RegisterJobResponse__Output> =>
  call<optimizerV1.RegisterJobResponse__Output>(h.client, 'RegisterJob', jobRequest(jobId, { m }));

describe('job generations', () => {
  let h: Harness;
  let clock: { ms: number };
  const watches: Watch[] = [];
  beforeEach(async () => {
    ({ h, clock } = await start());
  });
  afterEach(async () => {
    for (const w of watches.splice(0)) w.cancel();
    await h.close();
  });

  test('a new spec is refused while a rank of the old generation is alive, then starts generation 2', async () => {
    const g1 = await register(h, 'j', 4);
    expect(g1).toMatchObject({ created: true, generation: '1', profile_job_id: 'j' });
    await registerAll(h.client, 'j', 8, 1, 1, CLOCKS);
    const w = new Watch(h.client, 'j', 7);
    watches.push(w);
    const deployed = await w.until((s) => s.phase === 'PHASE_DEPLOYED');
    expect(deployed.generation).toBe('1');
    expect(deployed.spec_hash).toBe(g1.spec_hash);

    // M=8 under the same id while rank 7 watches: refused, and the old plan is untouched.
    const refused = await failure(register(h, 'j', 8));
    expect(refused.code).toBe(status.FAILED_PRECONDITION);
    expect(refused.details).toMatch(/different spec.*alive/);
    const st = await call<optimizerV1.GetJobStatusResponse__Output>(h.client, 'GetJobStatus', {
      job_id: 'j',
    });
    expect(st).toMatchObject({ generation: '1', spec_hash: g1.spec_hash, phase: 'PHASE_DEPLOYED' });

    // The watcher goes away but the ranks were heard from just now: still alive for the timeout.
    w.cancel();
    await pollUntil(() => h.module.optimizer.hub.watcherCount('j') === 0);
    expect((await failure(register(h, 'j', 8))).code).toBe(status.FAILED_PRECONDITION);

    clock.ms += RANK_TIMEOUT_MS + 1;
    const g2 = await register(h, 'j', 8);
    expect(g2).toMatchObject({ created: true, generation: '2', profile_job_id: 'j.g2' });
    expect(g2.spec_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(g2.spec_hash).not.toBe(g1.spec_hash);
    const st2 = await call<optimizerV1.GetJobStatusResponse__Output>(h.client, 'GetJobStatus', {
      job_id: 'j',
    });
    expect(st2).toMatchObject({ generation: '2', phase: 'PHASE_REGISTERING', registered_ranks: 0 });

    // A rank of generation 1 cannot report into, watch, or join generation 2.
    const rep = await failure(
      call(h.client, 'ReportIteration', {
        job_id: 'j',
        rank: { rank: 0 },
        iteration: '5',
        time_s: 1,
        energy_j: 1,
        schedule_version: '4',
        generation: '1',
      }),
    );
    expect(rep.code).toBe(status.FAILED_PRECONDITION);
    const join = await failure(
      call(h.client, 'RegisterRank', {
        job_id: 'j',
        rank: { rank: 0 },
        node: 'n0',
        supported_frequencies_mhz: CLOCKS,
        expected_spec_hash: g1.spec_hash,
      }),
    );
    expect(join.code).toBe(status.FAILED_PRECONDITION);
    expect(join.details).toContain(g2.spec_hash);
    const stream = h.client.WatchSchedule({ job_id: 'j', rank: 0, generation: '1' });
    const err = await new Promise<{ code: number }>((resolve) => stream.on('error', resolve));
    expect(err.code).toBe(status.FAILED_PRECONDITION);

    // The new generation's schedules carry its generation and hash.
    const w2 = new Watch(h.client, 'j', 0);
    watches.push(w2);
    const first = await w2.until(() => true);
    expect(first).toMatchObject({ generation: '2', spec_hash: g2.spec_hash, version: '1' });
  });

  test('re-registering the same spec keeps the generation and is idempotent', async () => {
    const a = await register(h, 'same', 4);
    clock.ms += 10 * RANK_TIMEOUT_MS;
    const b = await register(h, 'same', 4);
    expect(b).toEqual({ ...a, created: false });
  });
});

describe('list, show and delete', () => {
  let h: Harness;
  let clock: { ms: number };
  beforeEach(async () => {
    ({ h, clock } = await start());
  });
  afterEach(async () => {
    await h.close();
  });

  test('ListJobs pages by job id; GetJob shows spec, ranks and liveness', async () => {
    for (const id of ['c', 'a', 'b']) await register(h, id, 4);
    await call(h.client, 'RegisterRank', {
      job_id: 'b',
      rank: { rank: 3, pp_rank: 3 },
      node: 'n1',
      device_index: 3,
      supported_frequencies_mhz: CLOCKS,
      simulated: true,
    });
    const p1 = await call<optimizerV1.ListJobsResponse__Output>(h.client, 'ListJobs', {
      page_size: 2,
    });
    expect(p1.jobs.map((j) => j.job_id)).toEqual(['a', 'b']);
    expect(p1.next_page_token).toBe('b');
    const p2 = await call<optimizerV1.ListJobsResponse__Output>(h.client, 'ListJobs', {
      page_size: 2,
      page_token: p1.next_page_token,
    });
    expect(p2.jobs.map((j) => j.job_id)).toEqual(['c']);
    expect(p2.next_page_token).toBe('');
    const b = p1.jobs[1]!;
    expect(b).toMatchObject({
      generation: '1',
      world_size: 8,
      registered_ranks: 1,
      live_ranks: 1,
      finished: false,
      simulated: true,
      phase: 'PHASE_REGISTERING',
      created_unix_ms: '1000000',
      last_seen_unix_ms: '1000000',
    });
    expect(p1.jobs[0]).toMatchObject({ simulated: false, live_ranks: 0, registered_ranks: 0 });

    const shown = await call<optimizerV1.GetJobResponse__Output>(h.client, 'GetJob', {
      job_id: 'b',
    });
    expect(shown.spec).toMatchObject({
      dp_degree: 1,
      world_size: 8,
      pipeline: { num_stages: 8, num_microbatches: 4, schedule: 'SCHEDULE_KIND_1F1B' },
    });
    expect(shown.policy).toMatchObject({ intrinsic: true, kind: 'intrinsic' });
    expect(shown.ranks).toHaveLength(1);
    expect(shown.ranks[0]).toMatchObject({
      rank: { rank: 3, pp_rank: 3 },
      node: 'n1',
      device_index: 3,
      alive: true,
      simulated: true,
      last_seen_unix_ms: '1000000',
    });
    expect(shown.has_imported_profile).toBe(true);

    clock.ms += RANK_TIMEOUT_MS;
    const later = await call<optimizerV1.GetJobResponse__Output>(h.client, 'GetJob', {
      job_id: 'b',
    });
    expect(later.ranks[0]!.alive).toBe(false);
    expect(later.summary).toMatchObject({ live_ranks: 0, finished: true });

    expect((await failure(call(h.client, 'GetJob', { job_id: 'zz' }))).code).toBe(status.NOT_FOUND);
    const bad = await failure(call(h.client, 'ListJobs', { page_size: 1001 }));
    expect(bad).toMatchObject({ code: status.INVALID_ARGUMENT, fields: ['page_size'] });
  });

  test('DeleteJob refuses live jobs unless forced; the id then starts the next generation', async () => {
    await register(h, 'd', 4);
    await call(h.client, 'RegisterRank', {
      job_id: 'd',
      rank: { rank: 0 },
      node: 'n0',
      supported_frequencies_mhz: CLOCKS,
    });
    const refused = await failure(call(h.client, 'DeleteJob', { job_id: 'd' }));
    expect(refused.code).toBe(status.FAILED_PRECONDITION);
    expect(
      (await call<optimizerV1.ListJobsResponse__Output>(h.client, 'ListJobs', {})).jobs.map(
        (j) => j.job_id,
      ),
    ).toEqual(['d']);

    const del = await call<optimizerV1.DeleteJobResponse__Output>(h.client, 'DeleteJob', {
      job_id: 'd',
      force: true,
    });
    expect(del).toEqual({ generation: '1', profile_deleted: true });
    expect(
      (await call<optimizerV1.ListJobsResponse__Output>(h.client, 'ListJobs', {})).jobs,
    ).toEqual([]);
    expect((await failure(call(h.client, 'GetJobStatus', { job_id: 'd' }))).code).toBe(
      status.NOT_FOUND,
    );
    const again = await register(h, 'd', 4);
    expect(again).toMatchObject({ created: true, generation: '2', profile_job_id: 'd.g2' });
  });

  test('finished jobs are deleted after the retention period', async () => {
    await h.close();
    ({ h, clock } = await start({ finishedRetentionMs: 5_000 }));
    await register(h, 'old', 4);
    await register(h, 'new', 4);
    clock.ms += 4_000;
    await call(h.client, 'RegisterRank', {
      job_id: 'new',
      rank: { rank: 0 },
      node: 'n0',
      supported_frequencies_mhz: CLOCKS,
    });
    clock.ms += 2_000; // 'old' last seen 6 s ago, 'new' 2 s ago
    // The retention sweep runs every max(1 s, retention/10) of real time: wait for its effect.
    const ids = async (): Promise<string[]> =>
      (await call<optimizerV1.ListJobsResponse__Output>(h.client, 'ListJobs', {})).jobs.map(
        (j) => j.job_id,
      );
    await pollUntil(async () => (await ids()).length < 2);
    expect(await ids()).toEqual(['new']);
  });
});
