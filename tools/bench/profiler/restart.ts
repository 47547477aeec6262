/**
 * Restart benchmark of the profiler (issue 5): SIGKILL `perseus serve profiler` while 8 streams are
 * ingesting, restart it on the same data dir, and count: every acknowledged measurement must be
 * there, and re-sending every acknowledged batch must be answered `duplicate` (nothing twice).
 *
 *   npx tsx tools/bench/profiler/restart.ts [--kill-after-s 5] [--streams 8] [--batch 2000] [--sync full|normal]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { profilerV1 } from '@perseus/proto';
import type { ProfilerClient } from './ingest-client';
import { connect, makeBatch, registerJob, runStream } from './ingest-client';
import { scrapeMetric, startProfilerProcess } from './server-process';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

/** Re-sends batches on one stream; returns how many were acknowledged as duplicates / stored anew. */
function resend(
  client: ProfilerClient,
  batches: profilerV1.MeasurementBatch[],
): Promise<{ duplicate: number; storedAgain: number; errors: number }> {
  return new Promise((resolve, reject) => {
    const call = client.ReportMeasurements();
    const out = { duplicate: 0, storedAgain: 0, errors: 0 };
    call.on('data', (a: profilerV1.BatchAck__Output) => {
      if (a.error) out.errors++;
      else if (a.duplicate) out.duplicate++;
      else out.storedAgain += a.stored_count;
    });
    call.on('error', reject);
    call.on('end', () => resolve(out));
    for (const b of batches) call.write(b);
    call.end();
  });
}

async function main(): Promise<void> {
  const killAfterS = Number(arg('kill-after-s', '5'));
  const streams = Number(arg('streams', '8'));
  const batchSize = Number(arg('batch', '2000'));
  const sync = arg('sync', 'full');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-bench-restart-'));
  try {
    const first = await startProfilerProcess(dir, ['--profiler-sync', sync]);
    const c1 = connect(first.address);
    await registerJob(c1, 'restart');
    let killed = false;
    const killer = setTimeout(() => {
      killed = true;
      first.proc.kill('SIGKILL');
    }, killAfterS * 1000);
    const results = await Promise.all(
      Array.from({ length: streams }, (_, i) =>
        runStream(c1, 'restart', i, { batchSize, window: 4, until: () => killed, keepIds: true }),
      ),
    );
    clearTimeout(killer);
    const exit = await first.stop();
    c1.close();
    const acked = results.reduce((n, r) => n + r.ackedMeasurements, 0);

    const second = await startProfilerProcess(dir, ['--profiler-sync', sync]);
    const c2 = connect(second.address);
    try {
      const rows = await scrapeMetric(second.metricsAddress, 'perseus_profiler_raw_rows');
      const ids = results.flatMap((r) => r.ackedIds);
      const batches = ids.map((id) => {
        const m = /^s(\d+)-(\d+)$/.exec(id)!;
        return makeBatch('restart', Number(m[1]), Number(m[2]), batchSize);
      });
      const again = await resend(c2, batches);
      const report = {
        bench: 'profiler-restart',
        sync,
        killed_after_s: killAfterS,
        exit_signal: first.proc.signalCode,
        exit_code: exit,
        acked_batches: ids.length,
        acked_measurements: acked,
        rows_after_restart: rows,
        lost_acknowledged: Math.max(0, acked - rows),
        committed_unacked_at_kill: Math.max(0, rows - acked),
        resent_acked_batches_duplicate: again.duplicate,
        resent_stored_again: again.storedAgain,
        resent_errors: again.errors,
      };
      console.log(JSON.stringify(report));
      if (rows < acked || again.duplicate !== ids.length || again.storedAgain !== 0)
        throw new Error('acknowledged data was lost or stored twice');
    } finally {
      c2.close();
      await second.stop('SIGTERM');
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
