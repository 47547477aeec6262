// The device check's driver (see run.sh): exercises NvmlBackend and the agent on a real GPU.
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { NvmlBackend, createAgentModule } from '@perseus/gpu-agent';
import { perseusGrpc } from '@perseus/proto';
import { PerseusServer, createLogger } from '@perseus/service-kit';

const args = process.argv.slice(2);
const arg = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const OUT = arg('--out', '/tmp');
const DEVICE = Number(arg('--device', '0'));
const NUM_CLOCKS = Number(arg('--clocks', '5'));
const WORKLOAD = arg('--workload', '');
const PY = process.env['PERSEUS_DEVICE_CHECK_PYTHON'] ?? '';
const summary: Record<string, unknown> = {
  started: new Date().toISOString(),
  device: DEVICE,
  checks: {} as Record<string, string>,
};
const checks = summary['checks'] as Record<string, string>;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function record(name: string, ok: boolean, detail: string): void {
  checks[name] = `${ok ? 'PASS' : 'FAIL'}: ${detail}`;
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}: ${detail}`);
}

function smiLockedClock(): string {
  try {
    return execFileSync(
      'nvidia-smi',
      ['-i', String(DEVICE), '--query-gpu=clocks.sm,clocks.max.sm', '--format=csv,noheader'],
      { timeout: 15000, encoding: 'utf8' },
    ).trim();
  } catch {
    return 'n/a';
  }
}

async function main(): Promise<number> {
  const b = await NvmlBackend.open(
    process.env['PERSEUS_AGENT_NVML_LIBRARY'] ?? 'libnvidia-ml.so.1',
  );
  const devs = b.devices();
  summary['devices'] = devs.map((d) => ({
    ...d,
    supportedSmClocksMhz: `${d.supportedSmClocksMhz.length} clocks ${d.supportedSmClocksMhz[0]}..${d.supportedSmClocksMhz.at(-1)}`,
  }));
  fs.writeFileSync(path.join(OUT, 'devices.json'), JSON.stringify(devs, null, 1));
  const d = devs[DEVICE];
  if (!d) throw new Error(`no device ${DEVICE} (found ${devs.length})`);
  record(
    'list',
    d.supportedSmClocksMhz.length > 0,
    `${devs.length} device(s); device ${DEVICE} ${d.name} ${d.pciBusId}, ${d.supportedSmClocksMhz.length} SM clocks, energy counter ${d.energyCounterAvailable}`,
  );

  // Energy counter monotonic over 2 s of samples.
  let prev = await b.readEnergyMj(DEVICE);
  let monotonic = true;
  const e0 = prev;
  for (let i = 0; i < 40; i++) {
    await sleep(50);
    const e = await b.readEnergyMj(DEVICE);
    if (e < prev) monotonic = false;
    prev = e;
  }
  record(
    'energy-monotonic',
    monotonic && prev > e0,
    `${((prev - e0) / 1000).toFixed(3)} J over 2 s idle (${((prev - e0) / 2000).toFixed(1)} W)`,
  );

  // Lock / reset.
  const clocks = d.supportedSmClocksMhz;
  const mid = clocks[Math.floor(clocks.length / 2)]!;
  await b.lockSmClock(DEVICE, mid);
  const smiLocked = smiLockedClock();
  await b.resetSmClock(DEVICE);
  const smiReset = smiLockedClock();
  record(
    'lock-reset',
    true,
    `locked ${mid} MHz (nvidia-smi sm,max: ${smiLocked}); after reset: ${smiReset}`,
  );

  // Driver-call latency of a clock change (the agent's per-device worker pays this off the stream).
  const lockMs: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = process.hrtime.bigint();
    await b.lockSmClock(DEVICE, i % 2 === 0 ? clocks[0]! : mid);
    lockMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  await b.resetSmClock(DEVICE);
  lockMs.sort((x, y) => x - y);
  summary['lockLatencyMs'] = { median: lockMs[10], max: lockMs[19], all: lockMs };
  record(
    'lock-latency',
    true,
    `nvmlDeviceSetGpuLockedClocks alternating ${clocks[0]}/${mid} MHz: median ${lockMs[10]!.toFixed(3)} ms, max ${lockMs[19]!.toFixed(3)} ms (20 calls)`,
  );

  // The agent itself on a temp socket: lease, Begin/End at a clock, reset on stream end.
  const sockDir = fs.mkdtempSync(path.join(OUT, 'agent-'));
  const logger = createLogger('device-check', 'warn');
  const address = `unix:${path.join(sockDir, 'a.sock')}`;
  await b.close();
  const mod = await createAgentModule({
    logger,
    backend: 'nvml',
    stateFile: path.join(sockDir, 'state.json'),
    auditLogFile: path.join(OUT, 'agent-audit.log'),
    listenAddress: address,
    env: process.env,
  });
  const server = new PerseusServer({ address, logger });
  for (const s of mod.services) server.addService(s);
  server.onShutdown(() => mod.close());
  await mod.onListening?.(await server.start());
  const client = new (perseusGrpc().perseus.agent.v1.GpuAgent)(
    address,
    grpc.credentials.createInsecure(),
  );
  // 20 Begin/End pairs alternating two clocks: every Begin changes the clock (the agent's worst case).
  const PAIRS = 20;
  const measured = await new Promise<{ mhz: number; energy: number; time: number }>(
    (resolve, reject) => {
      const s = client.OpenSession();
      const t = (): string => String(process.hrtime.bigint());
      const timer = setTimeout(() => reject(new Error('agent session timed out')), 30000);
      const mhzOf = (seq: number): number => (seq % 2 === 1 ? mid : clocks[0]!);
      let first: { mhz: number; energy: number; time: number } | undefined;
      s.on(
        'data',
        (m: {
          opened?: unknown;
          measurement?: {
            seq: string;
            frequency_applied_mhz: number;
            energy_j: number;
            time_s: number;
          };
          error?: unknown;
        }) => {
          if (m.opened) {
            void (async () => {
              for (let seq = 1; seq <= PAIRS; seq++) {
                s.write({
                  begin: {
                    seq,
                    instruction: 'INSTRUCTION_KIND_FORWARD',
                    frequency_mhz: mhzOf(seq),
                    t_ns: t(),
                  },
                });
                await sleep(seq === 1 ? 500 : 50);
                s.write({ end: { seq, t_ns: t() } });
                await sleep(10);
              }
            })();
          }
          if (m.error) reject(new Error(JSON.stringify(m.error)));
          if (m.measurement) {
            const got = {
              mhz: m.measurement.frequency_applied_mhz,
              energy: m.measurement.energy_j,
              time: m.measurement.time_s,
            };
            if (Number(m.measurement.seq) === 1) first = got;
            if (got.mhz !== mhzOf(Number(m.measurement.seq)))
              reject(new Error(`seq ${m.measurement.seq}: applied ${got.mhz} MHz`));
            if (Number(m.measurement.seq) === PAIRS) {
              clearTimeout(timer);
              s.end();
              resolve(first ?? got);
            }
          }
        },
      );
      s.on('error', () => undefined);
      s.write({ open: { job_id: 'device-check', rank: {}, device_index: DEVICE } });
    },
  );
  const st = mod.core.stats;
  const q = (w: typeof st.receiveToApply, p: number): string => (w.quantile(p) * 1000).toFixed(3);
  summary['agentApplyLatencyMs'] = {
    receiveToApply: {
      p50: q(st.receiveToApply, 0.5),
      p99: q(st.receiveToApply, 0.99),
      n: st.receiveToApply.count,
    },
    eventToApply: {
      p50: q(st.eventToApply, 0.5),
      p99: q(st.eventToApply, 0.99),
      n: st.eventToApply.count,
    },
  };
  record(
    'agent-apply-latency',
    st.receiveToApply.count >= PAIRS,
    `${PAIRS} clock-changing Begins: received→applied p50 ${q(st.receiveToApply, 0.5)} ms, p99 ${q(st.receiveToApply, 0.99)} ms; client event→applied p50 ${q(st.eventToApply, 0.5)} ms, p99 ${q(st.eventToApply, 0.99)} ms (measured through ${process.env['PERSEUS_AGENT_NVML_LIBRARY'] ?? 'libnvidia-ml.so.1'})`,
  );
  await sleep(500);
  const after = (
    await new Promise<{ devices: Array<{ locked_sm_clock_mhz: number }> }>((res, rej) =>
      client.ListDevices({}, (e, r) => (e ? rej(e) : res(r as never))),
    )
  ).devices[DEVICE]!;
  record(
    'agent-session',
    measured.mhz === mid && after.locked_sm_clock_mhz === 0,
    `applied ${measured.mhz} MHz, ${measured.energy.toFixed(2)} J over ${measured.time.toFixed(3)} s idle; after stream end locked=${after.locked_sm_clock_mhz}`,
  );
  client.close();
  await server.shutdown(2000);

  // Workload at several clocks (torch), via a fresh backend.
  if (!PY) {
    record('workload', true, 'SKIPPED: python3 with CUDA torch not available');
  } else {
    const wb = await NvmlBackend.open(
      process.env['PERSEUS_AGENT_NVML_LIBRARY'] ?? 'libnvidia-ml.so.1',
    );
    const chosen = [
      ...new Set(
        Array.from(
          { length: NUM_CLOCKS },
          (_, i) =>
            clocks[
              Math.round(
                (i * (Math.min(clocks.length, Math.ceil(clocks.length * 0.6)) - 1)) /
                  Math.max(1, NUM_CLOCKS - 1),
              )
            ]!,
        ),
      ),
    ];
    const py = spawn(PY, [WORKLOAD, '8192', '1.0', String(DEVICE)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = readline.createInterface({ input: py.stdout! })[Symbol.asyncIterator]();
    const next = async (): Promise<Record<string, unknown>> => {
      const r = await Promise.race([
        lines.next(),
        sleep(120000).then(() => ({ done: true, value: undefined })),
      ]);
      if (r.done || r.value === undefined) throw new Error('workload stopped answering');
      return JSON.parse(r.value as string) as Record<string, unknown>;
    };
    const ready = await next();
    const rows: string[] = ['stage,instruction,frequency,time,energy'];
    const results: Array<{ mhz: number; timeS: number; energyJ: number }> = [];
    try {
      for (const mhz of chosen) {
        await wb.lockSmClock(DEVICE, mhz);
        await sleep(300);
        for (let rep = 0; rep < 2; rep++) {
          const e0w = await wb.readEnergyMj(DEVICE);
          py.stdin!.write('run\n');
          const r = await next();
          const e1w = await wb.readEnergyMj(DEVICE);
          if (rep === 0) continue; // first run at a new clock settles it
          const timeS = Number(r['time_s']);
          const energyJ = (e1w - e0w) / 1000;
          results.push({ mhz, timeS, energyJ });
          rows.push(`0,forward,${mhz},${timeS},${energyJ}`);
          console.log(
            `  ${mhz} MHz: ${timeS.toFixed(4)} s, ${energyJ.toFixed(2)} J, ${(energyJ / timeS).toFixed(1)} W`,
          );
        }
      }
    } finally {
      await wb.resetSmClock(DEVICE);
      py.stdin!.end();
      await wb.close();
    }
    fs.writeFileSync(path.join(OUT, 'profile.csv'), `${rows.join('\n')}\n`);
    summary['workload'] = { ...ready, results };
    const fastest = results[0];
    const slowest = results.at(-1);
    const timeOk = !!fastest && !!slowest && slowest.timeS > fastest.timeS;
    record(
      'workload',
      timeOk,
      fastest && slowest
        ? `${results.length} clocks: ${fastest.mhz} MHz ${fastest.timeS.toFixed(3)} s → ${slowest.mhz} MHz ${slowest.timeS.toFixed(3)} s (time rises as the clock falls: ${timeOk})`
        : 'no results',
    );
  }
  summary['finished'] = new Date().toISOString();
  fs.writeFileSync(path.join(OUT, 'summary.json'), JSON.stringify(summary, null, 1));
  fs.appendFileSync(
    path.join(OUT, 'summary.txt'),
    `${Object.entries(checks)
      .map(([k, v]) => `${k}: ${v}`)
      .join('\n')}\n`,
  );
  return Object.values(checks).every((v) => v.startsWith('PASS')) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('device-check failed:', err instanceof Error ? err.message : err);
    fs.appendFileSync(
      path.join(OUT, 'summary.txt'),
      `error: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exit(1);
  },
);
