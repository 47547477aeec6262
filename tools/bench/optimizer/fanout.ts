/**
 * Fan-out benchmark: 4,096 ranks (8 stages × 512 pipelines) watch their schedules from 4 processes;
 * a straggler report must reach every non-straggler rank's stream. Prints the latency from just
 * before the ReportStraggler call to each stream's arrival of the new version (wall clock, same host).
 *   node --import tsx tools/bench/optimizer/fanout.ts [--ranks 4096] [--procs 4] [--rounds 10] [--warmup 2] [--conns 8] [--decode-full]
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { optimizerV1 } from '@perseus/proto';
import {
  GPT3_A100_CSV,
  client,
  percentile,
  registerJob,
  scrape,
  startServer,
  summary,
  unary,
  wallMs,
} from './lib';

const args = process.argv.slice(2);
const opt = (name: string, d: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const N = 8;
const M = 12;
const RANKS = opt('--ranks', 4096);
const PROCS = opt('--procs', 4);
const ROUNDS = opt('--rounds', 10);
const WARMUP = opt('--warmup', 2);
const CONNS = opt('--conns', 8);
const DECODE = args.includes('--decode-full') ? 'full' : 'version';
const DP = RANKS / N;

type Msg =
  | { type: 'started' }
  | { type: 'ready'; version: number }
  | { type: 'arrivals'; version: number; times: Array<[number, number]> };

function waitFor<T extends Msg['type']>(
  child: ChildProcess,
  type: T,
): Promise<Extract<Msg, { type: T }>> {
  return new Promise((resolve) => {
    const on = (m: Msg): void => {
      if (m.type === type) {
        child.off('message', on);
        resolve(m as Extract<Msg, { type: T }>);
      }
    };
    child.on('message', on);
  });
}

async function main(): Promise<void> {
  const {
    child: server,
    address,
    metrics,
  } = await startServer(['--profile-csv', GPT3_A100_CSV, '--metrics-listen', '127.0.0.1:0']);
  const c = client(address, 999_999);
  try {
    const t0 = Date.now();
    await registerJob(c, 'fanout', N, M, DP);
    console.log(`registered ${RANKS} ranks in ${Date.now() - t0} ms`);
    const per = RANKS / PROCS;
    const kids = Array.from({ length: PROCS }, (_, i) =>
      fork(
        path.join(__dirname, 'watchers.ts'),
        [address, 'fanout', String(i * per), String((i + 1) * per), String(CONNS), DECODE],
        { execArgv: ['--import', 'tsx'], stdio: 'inherit' },
      ),
    );
    await Promise.all(kids.map((k) => waitFor(k, 'started')));
    let st = await unary<optimizerV1.GetJobStatusResponse__Output>(c, 'GetJobStatus', {
      job_id: 'fanout',
    });
    for (let i = 0; i < 600 && st.phase !== 'PHASE_DEPLOYED'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      st = await unary<optimizerV1.GetJobStatusResponse__Output>(c, 'GetJobStatus', {
        job_id: 'fanout',
      });
    }
    const ready = async (version: number): Promise<void> => {
      const w = kids.map((k) => waitFor(k, 'ready'));
      for (const k of kids) k.send({ type: 'waitAll', version });
      await Promise.all(w);
    };
    await ready(Number(st.schedule_version));
    console.log(
      `${RANKS} streams open at version ${st.schedule_version} (${PROCS} processes × ${CONNS} connections)`,
    );
    const all: number[] = [];
    const roundMax: number[] = [];
    const publishMs: number[] = [];
    for (let round = -WARMUP; round < ROUNDS; round++) {
      const straggler = ((round + WARMUP) * 37) % DP;
      const sent = wallMs();
      const r = await unary<optimizerV1.ReportStragglerResponse__Output>(c, 'ReportStraggler', {
        job_id: 'fanout',
        dp_rank: straggler,
        slowdown: 1.2,
      });
      const v = Number(r.schedule_version);
      await ready(v);
      const got = await Promise.all(
        kids.map((k) => {
          const p = waitFor(k, 'arrivals');
          k.send({ type: 'arrivals', version: v });
          return p;
        }),
      );
      const lat = got.flatMap((g) =>
        g.times.filter(([rank]) => Math.floor(rank / N) !== straggler).map(([, t]) => t - sent),
      );
      const pub =
        1000 * (await scrape(metrics!, 'perseus_optimizer_last_publish_seconds{job_id="fanout"}'));
      if (round >= 0) {
        all.push(...lat);
        roundMax.push(Math.max(...lat));
        publishMs.push(pub);
      }
      console.log(
        `${round < 0 ? 'warm-up' : 'round'} ${round}: straggler dp=${straggler} v=${v}: ${summary(lat)}; server hand-off to all streams ${pub.toFixed(1)} ms`,
      );
      const rec = await unary<optimizerV1.ReportStragglerResponse__Output>(c, 'ReportStraggler', {
        job_id: 'fanout',
        dp_rank: straggler,
        recovered: true,
      });
      await ready(Number(rec.schedule_version));
    }
    console.log(
      `RESULT fanout ranks=${RANKS} procs=${PROCS} conns=${CONNS} decode=${DECODE} non-straggler arrivals: ${summary(all)}; worst round max ${percentile(roundMax, 100).toFixed(2)} ms; server hand-off of a version to all ${RANKS} streams: median ${percentile(publishMs, 50).toFixed(1)} ms, max ${percentile(publishMs, 100).toFixed(1)} ms`,
    );
    for (const k of kids) k.send({ type: 'exit' });
  } finally {
    c.close();
    server.kill('SIGTERM');
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
