import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { computeFrontier, parseProfileCsv } from '@perseus/planner';
import { perseusGrpc } from '@perseus/proto';
import type { optimizerV1, profilerV1 } from '@perseus/proto';
import { GPT3_A100_CSV as CSV, unaryCall } from '@perseus/service-kit';
import { startServeProcess } from './support/serve-process';

const CLOCKS = Array.from({ length: 38 }, (_, i) => 1410 - 15 * i);
const FLOOR = 1245; // 12 clocks: 1410 … 1245
const N = 2;
const M = 2;
const K = 2; // the profiler drops the first iteration of each clock as warm-up

const unary = <Res>(client: grpc.Client, method: string, req: unknown): Promise<Res> =>
  unaryCall<Res>(client, method, req, { deadlineMs: 30_000 });

describe('perseus serve: optimizer + profiler in one process', () => {
  let dir: string;
  let child: ChildProcessWithoutNullStreams | undefined;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-e2e-opt-'));
  });
  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sweeps online through the real profiler, plans from its cells and deploys the intrinsic plan', async () => {
    const profile = parseProfileCsv(fs.readFileSync(CSV, 'utf8'));
    const started = await startServeProcess(
      [
        'serve',
        '--optimizer-data-dir',
        path.join(dir, 'o'),
        '--profiler-data-dir',
        path.join(dir, 'p'),
        '--profiler-sync',
        'normal',
      ],
      {
        PERSEUS_AGENT_BACKEND: 'simulated',
        PERSEUS_AGENT_STATE_FILE: path.join(dir, 'agent.json'),
      },
    );
    child = started.child;
    const g = perseusGrpc().perseus;
    const opt = new g.optimizer.v1.Optimizer(started.address, grpc.credentials.createInsecure());
    const prof = new g.profiler.v1.Profiler(started.address, grpc.credentials.createInsecure());
    const measurements = prof.ReportMeasurements();
    const acks: profilerV1.BatchAck__Output[] = [];
    let onAck: (() => void) | undefined;
    measurements.on('data', (a: profilerV1.BatchAck__Output) => {
      acks.push(a);
      onAck?.();
    });
    measurements.on('error', () => undefined);
    const schedules: optimizerV1.Schedule__Output[][] = [[], []];
    let onSchedule: (() => void) | undefined;
    let watches: grpc.ClientReadableStream<optimizerV1.Schedule__Output>[] = [];
    const waitFor = async (pred: () => boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 30_000;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, 100);
          onSchedule = onAck = () => {
            clearTimeout(t);
            r();
          };
        });
      }
    };
    try {
      await unary(opt, 'RegisterJob', {
        job_id: 'e2e',
        spec: {
          pipeline: { schedule: 'SCHEDULE_KIND_1F1B', num_stages: N, num_microbatches: M },
          dp_degree: 1,
          tp_degree: 1,
          world_size: N,
          gpu_model: 'A100-SXM4',
          blocking_power_w: 83.64,
          profiling: { iterations_per_frequency: K, floor_frequency_mhz: FLOOR },
        },
      });
      watches = [0, 1].map((rank) => {
        const w = opt.WatchSchedule({ job_id: 'e2e', rank });
        w.on('data', (s: optimizerV1.Schedule__Output) => {
          schedules[rank]!.push(s);
          onSchedule?.();
        });
        w.on('error', () => undefined);
        return w;
      });
      for (let r = 0; r < N; r++) {
        await unary(opt, 'RegisterRank', {
          job_id: 'e2e',
          rank: { rank: r, pp_rank: r },
          node: 'node0',
          device_index: r,
          supported_frequencies_mhz: CLOCKS,
        });
      }
      await waitFor(
        () => schedules.every((s) => s.length > 0 && s[s.length - 1]!.phase === 'PHASE_PROFILING'),
        'PROFILING',
      );
      const swept: number[] = [];
      let iteration = 0;
      let batch = 0;
      for (let step = 0; step < 40; step++) {
        await waitFor(
          () =>
            schedules.every(
              (s) =>
                s.length > 0 &&
                s[s.length - 1]!.version === schedules[0]![schedules[0]!.length - 1]!.version,
            ),
          'both ranks on one version',
        );
        const current = schedules.map((s) => s[s.length - 1]!);
        if (current[0]!.phase !== 'PHASE_PROFILING') break;
        swept.push(current[0]!.instructions[0]!.frequency_mhz);
        for (let k = 0; k < K; k++, iteration++) {
          // Each rank measured every instruction of its schedule; the profile says what that costs.
          const ms = current.flatMap((s, stage) =>
            s.instructions.map((ins) => {
              const kind = ins.instruction === 'INSTRUCTION_KIND_FORWARD' ? 'forward' : 'backward';
              const o = profile.stages[stage]![kind].find(
                (x) => x.frequencyMhz === ins.frequency_mhz,
              )!;
              return {
                rank: { rank: stage, pp_rank: stage },
                instruction: ins.instruction,
                microbatch: ins.microbatch,
                frequency_mhz: ins.frequency_mhz,
                time_s: o.timeS,
                energy_j: o.energyJ,
                iteration,
              };
            }),
          );
          const id = `b${batch++}`;
          measurements.write({ batch_id: id, job_id: 'e2e', measurements: ms });
          await waitFor(() => acks.some((a) => a.batch_id === id), `ack of ${id}`);
          const ack = acks.find((a) => a.batch_id === id)!;
          expect([ack.stored_count, ack.error]).toEqual([ms.length, null]);
          for (let r = 0; r < N; r++) {
            await unary(opt, 'ReportIteration', {
              job_id: 'e2e',
              rank: { rank: r, pp_rank: r },
              iteration,
              time_s: 1,
              energy_j: 300,
              schedule_version: current[0]!.version,
            });
          }
        }
        const v = Number(current[0]!.version);
        await waitFor(
          () => schedules.every((s) => Number(s[s.length - 1]!.version) > v),
          'the next version',
        );
      }
      expect(swept).toEqual(CLOCKS.filter((c) => c >= FLOOR));
      await waitFor(
        () => schedules.every((s) => s[s.length - 1]!.phase === 'PHASE_DEPLOYED'),
        'DEPLOYED',
      );
      const restricted = {
        stages: profile.stages.slice(0, N).map((st) => ({
          forward: st.forward.filter((o) => o.frequencyMhz >= FLOOR),
          backward: st.backward.filter((o) => o.frequencyMhz >= FLOOR),
        })),
      };
      const frontier = computeFrontier({
        profile: restricted,
        pipeline: { schedule: '1f1b', numStages: N, numMicrobatches: M },
        blockingPowerW: 83.64,
        unitTimeS: 0.001,
      });
      const intrinsic = frontier.intrinsic();
      for (let r = 0; r < N; r++) {
        const s = schedules[r]![schedules[r]!.length - 1]!;
        expect(s.reason).toBe('intrinsic');
        expect(s.instructions.map((i) => i.frequency_mhz)).toEqual(
          intrinsic.plan[r]!.instructions.map((i) => i.frequencyMhz),
        );
        expect(s.expected_iteration_time_s).toBeCloseTo(intrinsic.point.timeS, 9);
      }
      const st = await unary<optimizerV1.GetJobStatusResponse__Output>(opt, 'GetJobStatus', {
        job_id: 'e2e',
      });
      expect(st.phase).toBe('PHASE_DEPLOYED');
      expect(st.predicted_saving_percent).toBeCloseTo(
        100 * (1 - intrinsic.point.energyJ / frontier.allMax.energyJ),
        6,
      );
    } finally {
      for (const w of watches) w.cancel();
      measurements.end();
      opt.close();
      prof.close();
      child.kill('SIGTERM');
    }
  }, 120_000);
});
