// Realistic measurement on simulated GPUs, off by default: an energy counter that steps every
// `counterPeriodMs` (NVML on an H100/H200: ~100 ms) and a power jitter per segment.
import { MODEL_SPECS, SimulatedBackend, agentOptionsFromEnv } from '../src';
import { checkAgentOptions } from '../src/config';

const PB = MODEL_SPECS['a100-sxm'].blockingPowerW;
const MS = 1_000_000n;

test('by default the counter is exact and activity notes return the exact value', async () => {
  let now = 1000n * MS;
  const b = new SimulatedBackend({ count: 1, clockNs: () => now });
  const e0 = await b.readEnergyMj(0);
  now += 7n * MS;
  expect((await b.readEnergyMj(0)) - e0).toBeCloseTo(PB * 7, 6);
  expect(b.noteActivity(0, null)).toEqual({ tNs: now, energyMj: expect.closeTo(e0 + PB * 7, 6) });
});

test('a stepped counter only shows a new value once per period, the energy at its step', async () => {
  let now = 1000n * MS;
  const b = new SimulatedBackend({ count: 1, clockNs: () => now, counterPeriodMs: 100 });
  const first = await b.readEnergyMj(0);
  const readings = [first];
  let changes = 0;
  // 1 s in 1 ms steps: 10 steps of the counter at the device's phase; every step after the first
  // (which covers the time since the device came up) shows 100 ms of blocking power.
  for (let i = 0; i < 1000; i++) {
    now += MS;
    const r = await b.readEnergyMj(0);
    if (r !== readings[readings.length - 1]) {
      if (changes > 0) expect(r - readings[readings.length - 1]!).toBeCloseTo(PB * 100, 6);
      changes++;
    }
    readings.push(r);
  }
  expect(changes).toBe(10);
  const shown = readings[readings.length - 1]! - first;
  expect(shown).toBeGreaterThan(PB * 900);
  expect(shown).toBeLessThanOrEqual(PB * 1000);
  // No exact value at an event: the agent interpolates between the stepped readings.
  expect(b.noteActivity(0, { stage: 0, instruction: 'forward' })).toBeUndefined();
});

test('a late activity note never makes a stepped counter go backwards', async () => {
  let now = 1000n * MS;
  const b = new SimulatedBackend({ count: 1, clockNs: () => now, counterPeriodMs: 10 });
  b.noteActivity(0, { stage: 0, instruction: 'forward' });
  now += 200n * MS;
  const before = await b.readEnergyMj(0);
  // The trainer went idle 150 ms ago: the timeline is revised below what was shown.
  b.noteActivity(0, null, now - 150n * MS);
  expect(await b.readEnergyMj(0)).toBe(before);
  now += 1000n * MS;
  expect(await b.readEnergyMj(0)).toBeGreaterThan(before);
});

test('power jitter: each segment draws the profile power times (1 + N(0, jitter)), seeded', async () => {
  const draws = (seed: number): Promise<number[]> => {
    let now = 0n;
    const b = new SimulatedBackend({
      count: 1,
      clockNs: () => now,
      powerJitter: 0.05,
      noiseSeed: seed,
    });
    return (async () => {
      const out: number[] = [];
      for (let i = 0; i < 400; i++) {
        now += MS;
        b.noteActivity(0, { stage: 0, instruction: 'forward' });
        out.push(await b.readPowerW(0));
      }
      return out;
    })();
  };
  const p = 23.80547200000007 / 0.05016166687011708;
  const xs = await draws(7);
  const mean = xs.reduce((a, x) => a + x, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1));
  expect(Math.abs(mean / p - 1)).toBeLessThan(0.01); // 4 standard errors of the mean
  expect(sd / p).toBeGreaterThan(0.04);
  expect(sd / p).toBeLessThan(0.06);
  expect(await draws(7)).toEqual(xs);
  expect(await draws(8)).not.toEqual(xs);
});

test('options: env and validation', () => {
  const o = agentOptionsFromEnv({
    PERSEUS_AGENT_SIM_COUNTER_PERIOD_MS: '100',
    PERSEUS_AGENT_SIM_POWER_JITTER: '0.02',
  });
  expect([o.simulatedCounterPeriodMs, o.simulatedPowerJitter]).toEqual([100, 0.02]);
  expect([
    agentOptionsFromEnv({}).simulatedCounterPeriodMs,
    agentOptionsFromEnv({}).simulatedPowerJitter,
  ]).toEqual([0, 0]);
  expect(() => checkAgentOptions({ ...o, simulatedPowerJitter: 0.9 })).toThrow(
    'simulatedPowerJitter must be 0-0.5, got 0.9',
  );
  expect(() => checkAgentOptions({ ...o, simulatedCounterPeriodMs: -1 })).toThrow(
    'simulatedCounterPeriodMs must be 0-10000, got -1',
  );
  expect(() => new SimulatedBackend({ count: 1, counterPeriodMs: Number.NaN })).toThrow(
    'counter period',
  );
});
