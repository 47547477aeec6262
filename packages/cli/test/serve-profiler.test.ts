import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { profilerV1 } from '@perseus/proto';
import { perseusGrpc } from '@perseus/proto';
import { streamExchange } from '@perseus/service-kit';
import { BIN, startServeProcess, type ServedProcess } from './support/serve-process';

type Client = InstanceType<ReturnType<typeof perseusGrpc>['perseus']['profiler']['v1']['Profiler']>;

type Served = ServedProcess;

const serveProfiler = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> =>
  startServeProcess(['serve', 'profiler', ...args], env);

function connect(address: string): Client {
  return new (perseusGrpc().perseus.profiler.v1.Profiler)(
    address,
    grpc.credentials.createInsecure(),
  );
}

function register(client: Client, jobId: string): Promise<void> {
  return new Promise((resolve, reject) =>
    client.RegisterJob(
      {
        job_id: jobId,
        pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: 4, num_microbatches: 8 },
        dp_degree: 4,
        tp_degree: 2,
      },
      (err) => (err ? reject(err) : resolve()),
    ),
  );
}

/** Batch `seq` of stream `s`: `size` distinct measurements (stream s plays pipeline s). */
function batch(jobId: string, s: number, seq: number, size: number): profilerV1.MeasurementBatch {
  const measurements: profilerV1.InstructionMeasurement[] = [];
  for (let i = 0; i < size; i++) {
    const n = seq * size + i;
    const stage = Math.floor(n / 16) % 4;
    const tp = Math.floor(n / 8) % 2;
    measurements.push({
      rank: { rank: (s * 4 + stage) * 2 + tp, dp_rank: s, pp_rank: stage, tp_rank: tp },
      instruction: 'INSTRUCTION_KIND_FORWARD',
      microbatch: n % 8,
      frequency_mhz: 1410,
      time_s: 0.05,
      energy_j: 20,
      iteration: String(Math.floor(n / 64)),
    });
  }
  return { batch_id: `s${s}-${seq}`, job_id: jobId, measurements };
}

interface Ingest {
  ackedIds: string[];
  acked: number;
}

/** Streams batches (window 4) until `stop()` or the stream breaks. */
function ingest(
  client: Client,
  jobId: string,
  s: number,
  size: number,
  stop: () => boolean,
  onAck: (stored: number) => void = () => undefined,
): Promise<Ingest> {
  return new Promise((resolve) => {
    const call = client.ReportMeasurements();
    const out: Ingest = { ackedIds: [], acked: 0 };
    let seq = 0;
    let inflight = 0;
    let ending = false;
    const pump = (): void => {
      while (!ending && inflight < 4) {
        if (stop()) {
          ending = true;
          call.end();
          return;
        }
        inflight++;
        call.write(batch(jobId, s, seq++, size));
      }
    };
    call.on('data', (a: profilerV1.BatchAck__Output) => {
      inflight--;
      if (!a.error) {
        out.ackedIds.push(a.batch_id);
        out.acked += a.stored_count;
        onAck(a.stored_count);
      }
      pump();
    });
    call.on('error', () => resolve(out));
    call.on('end', () => resolve(out));
    pump();
  });
}

function scrape(address: string, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://${address}/metrics`, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => {
          const line = text.split('\n').find((l) => l.startsWith(`${name} `));
          if (line) resolve(Number(line.split(' ')[1]));
          else reject(new Error(`no ${name}`));
        });
      })
      .on('error', reject);
  });
}

function sendOne(
  client: Client,
  b: profilerV1.MeasurementBatch,
): Promise<profilerV1.BatchAck__Output[]> {
  return streamExchange(client.ReportMeasurements(), [b]);
}

describe('perseus serve profiler', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-serve-profiler-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('loses nothing acknowledged when SIGKILLed mid-ingest, and stores nothing twice after restart', async () => {
    const args = ['--profiler-data-dir', dir, '--profiler-metrics-listen', '127.0.0.1:0'];
    const first = await serveProfiler(args);
    const c1 = connect(first.address);
    await register(c1, 'k');
    let killed = false;
    let ackedSoFar = 0;
    const progress = setInterval(() => {
      // Kill once a good amount has been acknowledged, while the streams are still sending.
      if (!killed && ackedSoFar >= 20_000) {
        killed = true;
        first.child.kill('SIGKILL');
      }
    }, 20);
    const runs = await Promise.all(
      [0, 1, 2, 3].map((s) =>
        ingest(
          c1,
          'k',
          s,
          500,
          () => killed,
          (n) => (ackedSoFar += n),
        ),
      ),
    );
    clearInterval(progress);
    c1.close();
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    const acked = runs.reduce((n, r) => n + r.acked, 0);
    expect(acked).toBeGreaterThan(0);

    const second = await serveProfiler(args);
    const c2 = connect(second.address);
    try {
      const rows = await scrape(second.metrics!, 'perseus_profiler_raw_rows');
      expect(rows).toBeGreaterThanOrEqual(acked);
      expect(rows - acked).toBeLessThanOrEqual(4 * 4 * 500); // at most the windows in flight
      const ids = runs.flatMap((r) => r.ackedIds);
      for (const id of ids.slice(-8)) {
        const [, s, seq] = /^s(\d+)-(\d+)$/.exec(id)!;
        expect((await sendOne(c2, batch('k', Number(s), Number(seq), 500)))[0]).toMatchObject({
          batch_id: id,
          stored_count: 0,
          duplicate: true,
        });
      }
    } finally {
      c2.close();
      second.child.kill('SIGTERM');
      expect(await second.exited).toEqual({ code: 0, signal: null });
    }
  });

  it('drains on SIGTERM: every acknowledged batch is stored and the process exits 0', async () => {
    const args = [
      '--profiler-data-dir',
      dir,
      '--profiler-metrics-listen',
      '127.0.0.1:0',
      '--profiler-sync',
      'normal',
    ];
    const first = await serveProfiler(args);
    const c1 = connect(first.address);
    await register(c1, 'd');
    const started = Date.now();
    let termSent = false;
    const runs = await Promise.all(
      [0, 1].map((s) =>
        ingest(c1, 'd', s, 200, () => {
          if (!termSent && Date.now() - started > 1500) {
            termSent = true;
            first.child.kill('SIGTERM');
          }
          return Date.now() - started > 20_000;
        }),
      ),
    );
    c1.close();
    expect(await first.exited).toEqual({ code: 0, signal: null });
    const acked = runs.reduce((n, r) => n + r.acked, 0);
    const second = await serveProfiler(args);
    try {
      // Queued batches were committed and acknowledged before the streams ended: exactly what was acked is stored.
      expect(acked).toBeGreaterThan(0);
      expect(await scrape(second.metrics!, 'perseus_profiler_raw_rows')).toBe(acked);
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });

  it('flags win over PERSEUS_PROFILER_* env: max batch and data dir', async () => {
    const envDir = path.join(dir, 'from-env');
    const flagDir = path.join(dir, 'from-flag');
    const served = await serveProfiler(
      ['--profiler-max-batch', '3', '--profiler-data-dir', flagDir],
      {
        PERSEUS_PROFILER_DATA_DIR: envDir,
        PERSEUS_PROFILER_MAX_BATCH: '1000',
      },
    );
    const c = connect(served.address);
    try {
      await register(c, 'f');
      const acks = await sendOne(c, batch('f', 0, 0, 4));
      expect(acks[0]!.error).toMatchObject({
        code: 3,
        violations: [{ field: 'measurements', description: 'must have at most 3 entries, got 4' }],
      });
      expect((await sendOne(c, batch('f', 0, 1, 3)))[0]).toMatchObject({
        stored_count: 3,
        duplicate: false,
      });
      expect(fs.existsSync(path.join(flagDir, 'profiler.db'))).toBe(true);
      expect(fs.existsSync(envDir)).toBe(false);
    } finally {
      c.close();
      served.child.kill('SIGTERM');
      await served.exited;
    }
  });

  it('refuses a bad flag value at startup naming it', async () => {
    const child = spawn(BIN, [
      'serve',
      'profiler',
      '--listen',
      '127.0.0.1:0',
      '--profiler-data-dir',
      dir,
      '--profiler-sync',
      'sometimes',
    ]);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).not.toBe(0);
    expect(stderr).toContain('sync must be full or normal, got "sometimes"');
  });
});
