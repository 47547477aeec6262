// GPUs whose energy counter advances in steps (an H100/H200 updates NVML's counter ~every 100 ms):
// the agent must spread each step over the time it covers, not charge it to whichever instruction
// the step lands in.
import { EnergyTracker } from '../src/energy-tracker';
import { SimulatedBackend } from '../src';
import type { RunningAgent } from './helpers';
import { SessionClient, nowNs, sleep, startAgent } from './helpers';

/** A100 SXM stage 0 forward at 1005 MHz (sosp24 CSV), watts. */
const A100_S0_FWD_1005_W = 17.781311999999918 / 0.06648568916320799;

/** A simulated GPU whose counter only shows a new value when 100 ms have passed since the last one. */
class SteppedCounterBackend extends SimulatedBackend {
  private readonly shown = new Map<number, { tNs: bigint; mj: number }>();
  // Like real hardware, no exact counter values at event times: only the stepped readings.
  override noteActivity(...args: Parameters<SimulatedBackend['noteActivity']>): {
    tNs: bigint;
    energyMj: number;
  } {
    super.noteActivity(...args);
    return undefined as never;
  }
  override async readEnergyMj(index: number): Promise<number> {
    const now = process.hrtime.bigint();
    const cur = this.shown.get(index);
    if (cur && now - cur.tNs < 100_000_000n) return cur.mj;
    const mj = await super.readEnergyMj(index);
    this.shown.set(index, { tNs: now, mj });
    return mj;
  }
}

test('EnergyTracker keeps the first reading of each step and interpolates between steps', () => {
  const t = new EnergyTracker();
  // Readings every 10 ms; the counter stepped by 60 J at 100 ms and 200 ms (600 W).
  for (let ms = 0; ms <= 250; ms += 10)
    t.add(BigInt(ms) * 1_000_000n, ms < 100 ? 0 : ms < 200 ? 60_000 : 120_000);
  expect(t.size).toBe(3);
  expect(t.at(50_000_000n)).toBeCloseTo(30_000, 9);
  expect(t.at(150_000_000n)).toBeCloseTo(90_000, 9);
  expect(t.knownAfter(150_000_000n)).toBe(true);
  expect(t.knownAfter(200_000_000n)).toBe(false);
});

let agent: RunningAgent | undefined;
afterEach(async () => {
  await agent?.stop();
  agent = undefined;
});

test('back-to-back instructions on a stepped counter each get their share (not 0, 1 or 2 steps)', async () => {
  const backend = new SteppedCounterBackend({ count: 1 });
  agent = await startAgent({ backendInstance: backend, energySampleIntervalMs: 10 });
  const s = new SessionClient(agent.client);
  s.open('job-stepped', 0);
  await s.opened();
  let t = nowNs();
  s.send({
    begin: {
      seq: 1,
      instruction: 'INSTRUCTION_KIND_FORWARD',
      microbatch: 0,
      frequency_mhz: 1005,
      t_ns: t,
    },
  });
  for (let seq = 1; seq <= 4; seq++) {
    await sleep(250);
    t = nowNs();
    s.send({ end: { seq, t_ns: t } });
    if (seq < 4)
      s.send({
        begin: {
          seq: seq + 1,
          instruction: 'INSTRUCTION_KIND_FORWARD',
          microbatch: seq,
          frequency_mhz: 1005,
          t_ns: t,
        },
      });
  }
  for (const seq of [2, 3]) {
    const m = await s.measurement(seq);
    // Constant power from the first Begin to the last End: the reconstruction is exact up to the
    // 10 ms sampling; a step-function reading would be off by ~±40 % (0.2 s or 0.3 s of power).
    expect(m.energy_j / (m.time_s * A100_S0_FWD_1005_W)).toBeGreaterThan(0.96);
    expect(m.energy_j / (m.time_s * A100_S0_FWD_1005_W)).toBeLessThan(1.04);
  }
  s.stream.end();
  await s.done;
});
