import * as path from 'node:path';
import {
  MODEL_SPECS,
  SimulatedBackend,
  StateFile,
  loadProfileTable,
  parseProfileCsv,
} from '../src';
import { tempDir } from './helpers';

describe('profile tables', () => {
  test('A100 SXM from the sosp24 CSV: 8 stages, exact rows, interpolation between clocks', () => {
    const t = loadProfileTable('a100-sxm');
    expect(t.source).toMatch(/gpt3-175b\+a100_sxm_bf16\.csv$/);
    expect(t.numStages).toBe(8);
    const top = t.lookup(0, 'forward', 1410);
    expect(top.timeS).toBeCloseTo(0.05016166687011708, 12);
    expect(top.powerW).toBeCloseTo(23.80547200000007 / 0.05016166687011708, 9);
    // 1402.5 is half-way between the 1395 and 1410 rows.
    const mid = t.lookup(0, 'forward', 1402.5);
    expect(mid.timeS).toBeCloseTo((0.05016166687011708 + 0.0501853656768798) / 2, 12);
    // Above the table: the top row; below it: time scales with f_min / f.
    expect(t.lookup(0, 'forward', 2000)).toEqual(top);
    const low = t.lookup(0, 'forward', 855);
    expect(t.lookup(0, 'forward', 427.5).timeS).toBeCloseTo(low.timeS * 2, 12);
    expect(t.supportedSmClocksMhz()).toHaveLength(81);
  });

  test('A40 from its CSV; H100 is derived from A100 and labelled so', () => {
    expect(loadProfileTable('a40').lookup(0, 'backward', 1740).timeS).toBeCloseTo(
      0.27707920932769775,
      12,
    );
    const h = loadProfileTable('h100-sxm');
    expect(h.source).toMatch(/^derived from /);
    expect(MODEL_SPECS['h100-sxm'].provenance).toMatch(/^DERIVED, not measured/);
    expect(h.lookup(0, 'forward', 1980).timeS).toBeCloseTo(0.05016166687011708 * 0.5, 12);
  });

  test('falls back to the embedded table when the CSV directory is missing', () => {
    const t = loadProfileTable('a100-sxm', '/nonexistent');
    expect(t.source).toMatch(/^embedded/);
    expect(t.numStages).toBe(1);
    expect(t.lookup(5, 'backward', 990).timeS).toBeCloseTo(0.12267, 9);
  });

  test('rejects malformed CSV naming the line', () => {
    expect(() =>
      parseProfileCsv('stage,instruction,frequency,time,energy\n0,sideways,1410,1,1\n', 'p.csv'),
    ).toThrow('p.csv:2: bad row');
    expect(() => parseProfileCsv('a,b\n', 'p.csv')).toThrow('p.csv: header must be');
  });
});

describe('SimulatedBackend', () => {
  test('the energy counter integrates profile power over (test-clock) time', async () => {
    let now = 1_000_000_000n;
    const b = new SimulatedBackend({ count: 1, clockNs: () => now });
    const pb = MODEL_SPECS['a100-sxm'].blockingPowerW;
    const e0 = await b.readEnergyMj(0);
    now += 1_000_000_000n; // 1 s idle
    expect((await b.readEnergyMj(0)) - e0).toBeCloseTo(pb * 1000, 6);
    await b.lockSmClock(0, 1005);
    b.noteActivity(0, { stage: 1, instruction: 'forward' });
    const e1 = await b.readEnergyMj(0);
    now += 500_000_000n;
    const p = 17.781311999999918 / 0.06648568916320799;
    expect((await b.readEnergyMj(0)) - e1).toBeCloseTo(p * 500, 6);
    expect(await b.readPowerW(0)).toBeCloseTo(p, 9);
    // Activity noted late, from an earlier (client) timestamp, rewrites the timeline from then on:
    // the device was idle for the last 100 ms, and the note returns the counter at that instant.
    const mark = b.noteActivity(0, null, now - 100_000_000n);
    expect(mark).toEqual({ tNs: now - 100_000_000n, energyMj: expect.closeTo(e1 + p * 400, 6) });
    expect(await b.readEnergyMj(0)).toBeCloseTo(e1 + p * 400 + pb * 100, 6);
    now += 100_000_000n;
    expect(await b.readEnergyMj(0)).toBeCloseTo(e1 + p * 400 + pb * 200, 6);
    // A note older than the last one only rewrites from its own timestamp (the later segment is dropped).
    b.noteActivity(0, { stage: 1, instruction: 'forward' }, now - 150_000_000n);
    expect(await b.readEnergyMj(0)).toBeCloseTo(e1 + p * 400 + pb * 50 + p * 150, 6);
  });

  test('a lowered power limit caps the draw; reset restores the default', async () => {
    let now = 0n;
    const b = new SimulatedBackend({ count: 1, clockNs: () => now });
    await b.setPowerLimitW(0, 150);
    b.noteActivity(0, { stage: 0, instruction: 'forward' });
    expect(await b.readPowerW(0)).toBe(150);
    await expect(b.setPowerLimitW(0, 50)).rejects.toThrow('power limit 50 W outside [100, 400]');
    await b.resetPowerLimit(0);
    expect(await b.getPowerLimitW(0)).toBe(400);
    now += 1n;
    expect(await b.readPowerW(0)).toBeCloseTo(23.80547200000007 / 0.05016166687011708, 9);
    await expect(b.lockSmClock(0, 1000)).rejects.toThrow('1000 MHz is not supported');
  });

  test('registers survive in the state file: a new backend sees the locked clock and a larger counter', async () => {
    const file = path.join(tempDir(), 'state.json');
    const first = new StateFile(file);
    const a = new SimulatedBackend({ count: 2, stateFile: first, model: 'a40' });
    await a.lockSmClock(1, 1200);
    await a.lockMemoryClockMax(1);
    const e = await a.readEnergyMj(1);
    first.flush();
    const b = new SimulatedBackend({ count: 2, stateFile: new StateFile(file), model: 'a40' });
    expect(await b.readLockedSmClockMhz(1)).toBe(1200);
    expect(b.memoryClockLocked(1)).toBe(true);
    expect(await b.readLockedSmClockMhz(0)).toBe(0);
    // The "hardware" kept drawing idle power while no backend ran: strictly more energy.
    expect(await b.readEnergyMj(1)).toBeGreaterThan(e);
  });
});
