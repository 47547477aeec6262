import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { perseusGrpc } from '@perseus/proto';
import type { optimizerV1 } from '@perseus/proto';
import { startServe, type RunningServe } from '../src/commands/serve';
import { main } from '../src/main';
import { GPT3_A100_CSV, unaryCall } from '@perseus/service-kit';

const CLOCKS = Array.from({ length: 38 }, (_, i) => 1410 - 15 * i);

/** Runs `perseus <args>` in this process; returns what it printed and its exit code. */
async function perseus(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  const o = jest.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
    out += String(c);
    return true;
  });
  const e = jest.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => {
    err += String(c);
    return true;
  });
  process.exitCode = 0;
  try {
    await main(['node', 'perseus', ...args]);
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { out, err, code };
}

describe('perseus jobs / policy / straggler / frontier / status against a live optimizer', () => {
  let running: RunningServe;
  let client: grpc.Client;
  let dir: string;
  let server: string[];
  const call = <Res>(method: string, req: unknown): Promise<Res> =>
    unaryCall<Res>(client, method, req, { deadlineMs: 20_000 });
  const status = (): Promise<optimizerV1.GetJobStatusResponse__Output> =>
    call('GetJobStatus', { job_id: 'gpt3' });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-cli-opt-'));
    const quiet = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      // The imported profile skips the sweep: registration → planning → deployed.
      running = await startServe(['optimizer'], {
        listen: '127.0.0.1:0',
        logLevel: 'silent',
        optimizerDataDir: ':memory:',
        optimizerProfileCsv: GPT3_A100_CSV,
      });
    } finally {
      quiet.mockRestore();
    }
    server = ['--server', running.address, '--timeout-s', '20'];
    client = new (perseusGrpc().perseus.optimizer.v1.Optimizer)(
      running.address,
      grpc.credentials.createInsecure(),
    );
    await call('RegisterJob', {
      job_id: 'gpt3',
      spec: {
        pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: 8, num_microbatches: 4 },
        dp_degree: 2,
        tp_degree: 1,
        world_size: 16,
        gpu_model: 'A100-SXM4',
        blocking_power_w: 83.64,
      },
    });
    for (let r = 0; r < 16; r++)
      await call('RegisterRank', {
        job_id: 'gpt3',
        rank: { rank: r, dp_rank: Math.floor(r / 8), pp_rank: r % 8, tp_rank: 0 },
        node: 'n0',
        device_index: r % 8,
        supported_frequencies_mhz: CLOCKS,
      });
    for (let i = 0; i < 300 && (await status()).phase !== 'PHASE_DEPLOYED'; i++)
      await new Promise((r) => setTimeout(r, 100));
  }, 60_000);

  afterAll(async () => {
    client.close();
    await running.server.shutdown(2000);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('status prints phase, version and saving; frontier export writes the same frontier as GetFrontier', async () => {
    const s = await perseus('status', ...server, '--job', 'gpt3');
    expect(s.code).toBe(0);
    expect(s.out).toContain(`server ${running.address}: reachable`);
    expect(s.out).toMatch(/job gpt3: deployed\n {2}schedule version \d+, ranks 16\/16\n/);
    const f = await call<optimizerV1.GetFrontierResponse__Output>('GetFrontier', {
      job_id: 'gpt3',
    });
    const csvFile = path.join(dir, 'f.csv');
    const svgFile = path.join(dir, 'f.svg');
    const ex = await perseus(
      'frontier',
      'export',
      ...server,
      '--job',
      'gpt3',
      '--out',
      csvFile,
      '--svg',
      svgFile,
    );
    expect(ex.code).toBe(0);
    const rows = fs.readFileSync(csvFile, 'utf8').trim().split('\n');
    expect(rows[0]).toBe('index,time_s,energy_j,model_energy_j,chosen');
    expect(rows).toHaveLength(f.points.length + 1);
    const chosen = rows.slice(1).filter((r) => r.endsWith(',1'));
    expect(chosen).toEqual([
      `${f.chosen_index},${f.points[f.chosen_index]!.time_s},${f.points[f.chosen_index]!.energy_j},${f.points[f.chosen_index]!.model_energy_j},1`,
    ]);
    expect(fs.readFileSync(svgFile, 'utf8')).toContain('chosen plan');
    const json = await perseus(
      'frontier',
      'export',
      ...server,
      '--job',
      'gpt3',
      '--format',
      'json',
    );
    expect((JSON.parse(json.out) as { points: unknown[] }).points).toHaveLength(f.points.length);
  });

  it('policy set moves the chosen point and bumps the schedule version; a bad policy is refused', async () => {
    const before = await status();
    const r = await perseus('policy', 'set', ...server, '--job', 'gpt3', '--min-energy');
    expect(r.code).toBe(0);
    const after = await status();
    expect(Number(after.schedule_version)).toBeGreaterThan(Number(before.schedule_version));
    expect(r.out).toContain(`schedule version ${after.schedule_version}; chosen point`);
    const f = await call<optimizerV1.GetFrontierResponse__Output>('GetFrontier', {
      job_id: 'gpt3',
    });
    expect(f.chosen_index).toBe(f.points.length - 1); // T*: the slowest, least-energy point
    const two = await perseus(
      'policy',
      'set',
      ...server,
      '--job',
      'gpt3',
      '--intrinsic',
      '--min-energy',
    );
    expect(two.code).toBe(1);
    expect(two.err).toMatch(/exactly one of/);
    expect((await perseus('policy', 'set', ...server, '--job', 'gpt3', '--intrinsic')).code).toBe(
      0,
    );
    expect(
      (
        await call<optimizerV1.GetFrontierResponse__Output>('GetFrontier', {
          job_id: 'gpt3',
        })
      ).chosen_index,
    ).toBe(0);
  });

  it('straggler report slows the other pipeline; clear restores it; errors name call, address and field', async () => {
    const rep = await perseus(
      'straggler',
      'report',
      ...server,
      '--job',
      'gpt3',
      '--dp-rank',
      '1',
      '--slowdown',
      '1.2',
    );
    expect(rep.code).toBe(0);
    expect(rep.out).toMatch(
      /pipeline 1 straggles; schedule version \d+, target iteration time \d+\.\d{4} s/,
    );
    expect((await status()).straggler_dp_ranks).toEqual([1]);
    const clr = await perseus('straggler', 'clear', ...server, '--job', 'gpt3', '--dp-rank', '1');
    expect(clr.code).toBe(0);
    expect((await status()).straggler_dp_ranks).toEqual([]);
    const bad = await perseus(
      'straggler',
      'report',
      ...server,
      '--job',
      'gpt3',
      '--dp-rank',
      '7',
      '--slowdown',
      '1.2',
    );
    expect(bad.code).toBe(1);
    expect(bad.err).toContain(
      `perseus straggler report: ReportStraggler at ${running.address}: INVALID_ARGUMENT`,
    );
    expect(bad.err).toMatch(/dp_rank/);
    const missing = await perseus('status', ...server, '--job', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.err).toContain(`GetJobStatus at ${running.address}: NOT_FOUND`);
  });

  it('jobs list and show describe the job; delete is refused while ranks are alive, then forced', async () => {
    const list = await perseus('jobs', 'list', ...server);
    expect(list.code).toBe(0);
    const [head, row] = list.out.trim().split('\n');
    expect(head).toMatch(/^JOB +PHASE +VERSION +RANKS \(LIVE\/REG\/WORLD\) +GPUS +SAVING +STATE$/);
    const s = await status();
    expect(row).toMatch(
      new RegExp(
        `^gpt3 +deployed +${s.schedule_version} +\\d+/16/16 +real +${s.predicted_saving_percent.toFixed(2)} % +`,
      ),
    );
    const json = JSON.parse((await perseus('jobs', 'list', ...server, '--json')).out) as Array<{
      job_id: string;
    }>;
    expect(json.map((j) => j.job_id)).toEqual(['gpt3']);
    const show = await perseus('jobs', 'show', 'gpt3', ...server);
    expect(show.code).toBe(0);
    expect(show.out).toContain(
      'pipeline: 1f1b, 8 stages × 2 pipelines × TP 1, 4 microbatches; GPU A100-SXM4',
    );
    expect(show.out).toMatch(/ranks: \d+ live \/ 16 registered \/ 16/);
    expect(show.out).toContain('blocking power 83.64 W');
    expect(show.out).toContain('policy: intrinsic (fastest)');
    const gone = await perseus('jobs', 'show', 'nope', ...server);
    expect(gone.code).toBe(1);
    expect(gone.err).toContain(`GetJob at ${running.address}: NOT_FOUND`);
    // The ranks registered moments ago (within the optimizer's rank timeout): alive.
    const refused = await perseus('jobs', 'delete', 'gpt3', ...server);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain(`DeleteJob at ${running.address}: FAILED_PRECONDITION`);
    const forced = await perseus('jobs', 'delete', 'gpt3', ...server, '--force');
    expect(forced.code).toBe(0);
    expect(forced.out).toMatch(/^deleted job gpt3 \(generation 1\)/);
    expect((await perseus('jobs', 'list', ...server, '--json')).out.trim()).toBe('[]');
  });

  it('names the address it could not reach', async () => {
    const r = await perseus('status', '--server', '127.0.0.1:1', '--timeout-s', '1');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /^perseus status: cannot reach the optimizer at 127\.0\.0\.1:1 within 1 s \(/,
    );
  });
});
