/**
 * Reads under ingest (issue 13): `GetProfile` latency while measurements stream in at a paced rate,
 * and the acknowledged ingest rate with and without those reads, for a baseline checkout and this
 * one, in the same run on the same machine.
 *
 *   npx tsx tools/bench/profiler/read-under-ingest.ts --baseline-root /tmp/perseus-baseline
 *       [--rate 30000] [--duration-s 30] [--read-every-s 2] [--streams 4] [--batch 1000] [--runs 1]
 *       [--window-iterations 1000000] [--only baseline|current]
 *
 * Each phase starts a fresh `perseus serve profiler` (SQLite, sync=full) from the given checkout,
 * registers the 1,024-GPU job of ingest-client.ts, and paces `--rate` measurements/s over
 * `--streams` streams (window 4); phase "reads" also sends one GetProfile every `--read-every-s`
 * seconds (deadline 30 s) and records its latency. run.sh prepares the baseline worktree (commit
 * 7e78e2a, before the fix) and runs this. By default every measurement is at one clock (as after a
 * plan is deployed: the cells being read keep growing); `--window-iterations 20` sweeps clocks as
 * the profiling phase does. Prints one JSON line per checkout and phase, then the
 * ratios.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ProfilerClient } from './ingest-client';
import { connect, makeBatch, registerJob } from './ingest-client';
import { REPO_ROOT, startProfilerProcess } from './server-process';
import type { profilerV1 } from '@perseus/proto';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

interface PhaseResult {
  acked: number;
  errors: number;
  elapsedS: number;
  readsMs: number[];
  readErrors: number;
}

/** One stream paced at `rate` measurements/s (window 4) until `until()`. */
function pacedStream(
  client: ProfilerClient,
  streamIndex: number,
  batch: number,
  rate: number,
  windowIterations: number,
  until: () => boolean,
): Promise<{ acked: number; errors: number }> {
  return new Promise((resolve) => {
    const call = client.ReportMeasurements();
    const out = { acked: 0, errors: 0 };
    const t0 = Date.now();
    let seq = 0;
    let inflight = 0;
    let ending = false;
    const pump = (): void => {
      if (ending) return;
      if (until()) {
        ending = true;
        call.end();
        return;
      }
      // Due batches: what the pace allows by now; no catching up beyond the window.
      while (inflight < 4 && seq * batch <= ((Date.now() - t0) / 1000) * rate) {
        inflight++;
        call.write(makeBatch('bench', streamIndex, seq++, batch, windowIterations));
      }
    };
    const timer = setInterval(pump, 5);
    call.on('data', (ack: profilerV1.BatchAck__Output) => {
      inflight--;
      if (ack.error) out.errors++;
      else out.acked += ack.stored_count;
      pump();
    });
    const done = (): void => {
      clearInterval(timer);
      resolve(out);
    };
    call.on('error', done);
    call.on('end', done);
    pump();
  });
}

function getProfile(client: ProfilerClient): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) =>
    client.GetProfile(
      { job_id: 'bench', min_count: 0 },
      { deadline: Date.now() + 30_000 },
      (err) => (err ? reject(err) : resolve(Number(process.hrtime.bigint() - t0) / 1e6)),
    ),
  );
}

async function phase(
  root: string,
  reads: boolean,
  o: {
    rate: number;
    durationS: number;
    readEveryS: number;
    streams: number;
    batch: number;
    windowIterations: number;
  },
): Promise<PhaseResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-bench-rui-'));
  const server = await startProfilerProcess(dir, ['--profiler-sync', 'full'], 120_000, root);
  const client = connect(server.address);
  try {
    await registerJob(client, 'bench');
    const readsMs: number[] = [];
    let readErrors = 0;
    const deadline = Date.now() + o.durationS * 1000;
    const pending: Array<Promise<void>> = [];
    const reader = reads
      ? setInterval(() => {
          pending.push(
            getProfile(client).then(
              (ms) => void readsMs.push(ms),
              () => void readErrors++,
            ),
          );
        }, o.readEveryS * 1000)
      : undefined;
    const t0 = Date.now();
    const results = await Promise.all(
      Array.from({ length: o.streams }, (_, i) =>
        pacedStream(
          client,
          i,
          o.batch,
          o.rate / o.streams,
          o.windowIterations,
          () => Date.now() >= deadline,
        ),
      ),
    );
    const elapsedS = (Date.now() - t0) / 1000;
    if (reader) clearInterval(reader);
    await Promise.all(pending);
    return {
      acked: results.reduce((n, r) => n + r.acked, 0),
      errors: results.reduce((n, r) => n + r.errors, 0),
      elapsedS,
      readsMs,
      readErrors,
    };
  } finally {
    client.close();
    await server.stop('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

async function main(): Promise<void> {
  const baselineRoot = arg('baseline-root', '');
  const o = {
    rate: Number(arg('rate', '30000')),
    durationS: Number(arg('duration-s', '30')),
    readEveryS: Number(arg('read-every-s', '2')),
    streams: Number(arg('streams', '4')),
    batch: Number(arg('batch', '1000')),
    windowIterations: Number(arg('window-iterations', '1000000')),
  };
  const runs = Number(arg('runs', '1'));
  const only = arg('only', '');
  const roots = (
    [
      ['baseline', baselineRoot],
      ['current', REPO_ROOT],
    ] as Array<[string, string]>
  ).filter(([name, root]) => root !== '' && (only === '' || only === name));
  const summary: Record<string, Record<string, number[]>> = {};
  for (let run = 0; run < runs; run++) {
    for (const [name, root] of roots) {
      for (const reads of [false, true]) {
        const r = await phase(root, reads, o);
        const line = {
          bench: 'profiler-read-under-ingest',
          checkout: name,
          run,
          reads,
          target_per_s: o.rate,
          acked_per_s: Math.round(r.acked / r.elapsedS),
          batch_errors: r.errors,
          get_profile: reads
            ? {
                n: r.readsMs.length,
                errors: r.readErrors,
                p50_ms: Math.round(quantile(r.readsMs, 0.5)),
                p99_ms: Math.round(quantile(r.readsMs, 0.99)),
                max_ms: Math.round(Math.max(...r.readsMs)),
              }
            : undefined,
          cpus: os.cpus().length,
        };
        console.log(JSON.stringify(line));
        const s = (summary[name] ??= {});
        const push = (k: string, v: number): void => void (s[k] ??= []).push(v);
        push(reads ? 'acked_with_reads' : 'acked_without_reads', line.acked_per_s);
        if (reads) {
          push('p50_ms', line.get_profile!.p50_ms);
          push('p99_ms', line.get_profile!.p99_ms);
        }
      }
    }
  }
  const b = summary['baseline'];
  const c = summary['current'] ?? {};
  const med = (xs: number[] | undefined): number => (xs ? quantile(xs, 0.5) : NaN);
  console.log(
    JSON.stringify({
      bench: 'profiler-read-under-ingest-summary',
      runs,
      load: o,
      current: Object.fromEntries(Object.entries(c).map(([k, v]) => [k, v])),
      baseline: b ? Object.fromEntries(Object.entries(b).map(([k, v]) => [k, v])) : undefined,
      ratios: b
        ? {
            get_profile_p99_baseline_over_current: med(b['p99_ms']) / med(c['p99_ms']),
            acked_with_reads_current_over_baseline:
              med(c['acked_with_reads']) / med(b['acked_with_reads']),
          }
        : undefined,
    }),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
