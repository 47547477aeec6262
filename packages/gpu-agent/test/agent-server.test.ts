import * as fs from 'node:fs';
import * as path from 'node:path';
import { status } from '@grpc/grpc-js';
import { decodeFieldViolations } from '@perseus/service-kit';
import type { SimulatedBackend } from '../src';
import { readStateFile } from '../src';
import type { RunningAgent } from './helpers';
import { SessionClient, call, expectGrpcError, nowNs, sleep, startAgent, until } from './helpers';

/** A100 SXM stage 1 forward at 1005 MHz (sosp24 CSV): 17.781312 J / 0.066485689 s. */
const A100_S1_FWD_1005_W = 17.781311999999918 / 0.06648568916320799;

let agent: RunningAgent;
const sessions: SessionClient[] = [];

function session(): SessionClient {
  const s = new SessionClient(agent.client);
  sessions.push(s);
  return s;
}

async function device(index: number) {
  const res = await call(agent.client, 'ListDevices', {});
  return res.devices[index]!;
}

beforeEach(async () => {
  agent = await startAgent({ leaseTtlDefaultS: 30, energySampleIntervalMs: 20 });
});

afterEach(async () => {
  for (const s of sessions.splice(0)) s.stream.cancel();
  await agent.stop();
});

test('ListDevices describes the simulated A100s at default clocks', async () => {
  const res = await call(agent.client, 'ListDevices', {});
  expect(res.devices).toHaveLength(2);
  const d = res.devices[0]!;
  expect(d.backend).toBe('BACKEND_SIMULATED');
  expect(d.supported_sm_clocks_mhz[0]).toBe(1410);
  expect(d.supported_sm_clocks_mhz.at(-1)).toBe(210);
  expect(d.supported_sm_clocks_mhz).toHaveLength(81);
  expect(d.supported_memory_clocks_mhz).toEqual([1215]);
  expect(d.locked_sm_clock_mhz).toBe(0);
  expect(d.power_limit_w).toBe(400);
  expect(d.energy_counter_available).toBe(true);
  expect(d.lease).toBeNull();
});

test('a Begin/End pair yields a measurement with energy from the counter at the profile power', async () => {
  const s = session();
  s.open('job-a', 0);
  const opened = await s.opened();
  expect(opened.device?.index).toBe(0);
  expect(opened.lease_ttl_s).toBe(30);
  // Warm-up pair: the first events of a fresh process are slow to arrive (JIT), and a simulated
  // device can only start drawing active power from its last reported reading.
  s.send({
    begin: {
      seq: 1,
      instruction: 'INSTRUCTION_KIND_FORWARD',
      microbatch: 3,
      frequency_mhz: 1005,
      t_ns: nowNs(),
    },
  });
  s.send({ end: { seq: 1, t_ns: nowNs() } });
  await s.measurement(1);
  await sleep(50);
  s.send({
    begin: {
      seq: 3,
      instruction: 'INSTRUCTION_KIND_FORWARD',
      microbatch: 4,
      frequency_mhz: 1005,
      t_ns: nowNs(),
    },
  });
  await sleep(250);
  s.send({ end: { seq: 3, t_ns: nowNs() } });
  const m = await s.measurement(3);
  expect(m.frequency_applied_mhz).toBe(1005);
  expect(m.microbatch).toBe(4);
  expect(m.instruction).toBe('INSTRUCTION_KIND_FORWARD');
  expect(m.time_s).toBeGreaterThan(0.24);
  const watts = m.energy_j / m.time_s;
  expect(watts).toBeGreaterThan(A100_S1_FWD_1005_W * 0.95);
  expect(watts).toBeLessThan(A100_S1_FWD_1005_W * 1.05);
  expect((await device(0)).locked_sm_clock_mhz).toBe(1005);
  // The same clock again is not re-applied.
  s.send({
    begin: {
      seq: 4,
      instruction: 'INSTRUCTION_KIND_BACKWARD',
      microbatch: 4,
      frequency_mhz: 1005,
      t_ns: nowNs(),
    },
  });
  s.send({ end: { seq: 4, t_ns: nowNs() } });
  await s.measurement(4);
  const sim = agent.module.core.backend as SimulatedBackend;
  expect(sim.calls.filter((c) => c.startsWith('lockSmClock(0,'))).toEqual(['lockSmClock(0,1005)']);
});

test('events that arrive late are attributed at their client timestamps (simulated device)', async () => {
  // A trainer's sender thread can deliver Begin/End hundreds of ms late (GIL, busy host). The
  // simulated GPU still computed from the client's Begin to its End at the asked clock: the
  // measurement is that power × that duration, and the idle time around it stays at blocking power.
  const s = session();
  s.open('job-late', 0);
  await s.opened();
  s.send({
    begin: {
      seq: 1,
      instruction: 'INSTRUCTION_KIND_BACKWARD',
      microbatch: 0,
      frequency_mhz: 1410,
      t_ns: nowNs(),
    },
  });
  s.send({ end: { seq: 1, t_ns: nowNs() } });
  await s.measurement(1);
  const t0 = BigInt(nowNs());
  await sleep(400); // the sampler (every 20 ms) reads the counter many times meanwhile
  s.send({
    begin: {
      seq: 2,
      instruction: 'INSTRUCTION_KIND_FORWARD',
      microbatch: 1,
      frequency_mhz: 1005,
      t_ns: String(t0 + 50_000_000n),
    },
  });
  s.send({ end: { seq: 2, t_ns: String(t0 + 250_000_000n) } });
  const m = await s.measurement(2);
  expect(m.time_s).toBeCloseTo(0.2, 9);
  expect(m.energy_j).toBeCloseTo(A100_S1_FWD_1005_W * 0.2, 6);
  expect(m.frequency_applied_mhz).toBe(1005);
});

test('a second claimant gets FAILED_PRECONDITION naming the holder', async () => {
  const a = session();
  a.open('job-a', 0);
  await a.opened();
  const b = session();
  b.send({ open: { job_id: 'job-b', rank: { rank: 7 }, device_index: 0 } });
  const st = await b.done;
  expect(st.code).toBe(status.FAILED_PRECONDITION);
  expect(st.details).toContain('device 0 is leased by job "job-a" rank 3 (pp 1, dp 0, tp 0)');
  // The other device is free.
  const c = session();
  c.open('job-b', 1);
  expect((await c.opened()).device?.index).toBe(1);
  const d0 = await device(0);
  expect(d0.lease?.job_id).toBe('job-a');
  expect(d0.lease?.lease_id).toBe('');
});

test.each([
  ['the client half-closes', (s: SessionClient) => s.stream.end(), status.OK],
  ['the client cancels (dies)', (s: SessionClient) => s.stream.cancel(), status.CANCELLED],
])('clocks return to default when %s', async (_name, finish, code) => {
  const s = session();
  s.open('job-a', 0);
  await s.opened();
  s.send({
    begin: {
      seq: 1,
      instruction: 'INSTRUCTION_KIND_FORWARD',
      microbatch: 0,
      frequency_mhz: 1200,
      t_ns: nowNs(),
    },
  });
  s.send({ end: { seq: 1, t_ns: nowNs() } });
  await s.measurement(1);
  expect((await device(0)).locked_sm_clock_mhz).toBe(1200);
  finish(s);
  expect((await s.done).code).toBe(code);
  await until(
    async () => (await device(0)).locked_sm_clock_mhz === 0 && (await device(0)).lease === null,
  );
  const st = readStateFile(path.join(agent.dir, 'state.json'));
  expect(st?.devices['0']?.dirty).toBe(false);
  // The device can be leased again.
  const again = session();
  again.open('job-b', 0);
  expect((await again.opened()).device?.lease?.job_id).toBe('job-b');
});

test('the lease expires after its TTL without traffic: ABORTED and reset', async () => {
  const s = session();
  // 1 s: room for the Begin to be applied before the lease lapses even on a loaded machine.
  s.open('job-a', 0, { lease_ttl_s: 1 });
  expect((await s.opened()).lease_ttl_s).toBe(1);
  s.send({
    begin: {
      seq: 1,
      instruction: 'INSTRUCTION_KIND_FORWARD',
      microbatch: 0,
      frequency_mhz: 900,
      t_ns: nowNs(),
    },
  });
  // The clock is applied and then reset when the lease expires; both are read from the driver's
  // call log after the session ended (polling the clock could miss 900 on a slow machine).
  const sim = agent.module.core.backend as SimulatedBackend;
  const st = await s.done;
  expect(st.code).toBe(status.ABORTED);
  expect(st.details).toContain('lease expired');
  const locked = sim.calls.indexOf('lockSmClock(0,900)');
  expect(locked).toBeGreaterThanOrEqual(0);
  expect(sim.calls.slice(locked + 1).some((c) => c === 'resetSmClock(0)')).toBe(true);
  expect((await device(0)).locked_sm_clock_mhz).toBe(0);
  expect(agent.module.core.stats.leaseExpiries).toBe(1);
});

test('heartbeats keep a lease alive past its TTL', async () => {
  const s = session();
  // Heartbeats every 100 ms for 1.5 × a 1 s TTL: a stall of up to ~0.9 s between two of them (a
  // loaded machine) still renews the lease in time.
  s.open('job-a', 0, { lease_ttl_s: 1 });
  await s.opened();
  for (let i = 0; i < 15; i++) {
    s.send({ heartbeat: {} });
    await sleep(100);
  }
  expect((await device(0)).lease?.job_id).toBe('job-a');
});

test('the requested TTL is capped by the agent maximum', async () => {
  const s = session();
  s.open('job-a', 0, { lease_ttl_s: 10_000 });
  expect((await s.opened()).lease_ttl_s).toBe(300);
});

test('SetClocks / ResetClocks are lease-checked', async () => {
  const s = session();
  s.open('job-a', 1);
  const { lease_id } = await s.opened();
  expect(
    await call(agent.client, 'SetClocks', { lease_id, device_index: 1, sm_clock_mhz: 1095 }),
  ).toEqual({ applied_sm_clock_mhz: 1095 });
  expect((await device(1)).locked_sm_clock_mhz).toBe(1095);
  const wrongDevice = await expectGrpcError(
    call(agent.client, 'SetClocks', { lease_id, device_index: 0, sm_clock_mhz: 1095 }),
  );
  expect(wrongDevice.code).toBe(status.FAILED_PRECONDITION);
  expect(wrongDevice.details).toContain('the device is not leased (open a session first)');
  const wrongLease = await expectGrpcError(
    call(agent.client, 'SetClocks', {
      lease_id: 'not-the-lease',
      device_index: 1,
      sm_clock_mhz: 1095,
    }),
  );
  expect(wrongLease.code).toBe(status.FAILED_PRECONDITION);
  expect(wrongLease.details).toContain('leased by job "job-a" rank 3');
  await call(agent.client, 'ResetClocks', { lease_id, device_index: 1 });
  expect((await device(1)).locked_sm_clock_mhz).toBe(0);
});

test('ReadEnergy is monotonic and reports power', async () => {
  const a = await call(agent.client, 'ReadEnergy', { device_index: 1 });
  await sleep(50);
  const b = await call(agent.client, 'ReadEnergy', { device_index: 1 });
  expect(b.energy_j).toBeGreaterThan(a.energy_j);
  expect(b.power_w).toBeCloseTo(83.64, 6); // idle = blocking power
  // ~50 ms at 83.64 W ≈ 4.2 J.
  expect(b.energy_j - a.energy_j).toBeGreaterThan(83.64 * 0.04);
  expect(BigInt(b.timestamp_unix_ns)).toBeGreaterThan(BigInt(a.timestamp_unix_ns));
});

test('invalid session events are answered in-stream; nothing is applied; the session stays usable', async () => {
  const s = session();
  s.open('job-a', 0);
  await s.opened();
  const sim = agent.module.core.backend as SimulatedBackend;
  s.send({
    begin: { seq: 5, instruction: 'INSTRUCTION_KIND_FORWARD', frequency_mhz: 1000, t_ns: nowNs() },
  });
  const e5 = await s.error(5);
  expect(e5.error?.code).toBe(status.INVALID_ARGUMENT);
  expect(e5.error?.violations).toEqual([
    {
      field: 'begin.frequency_mhz',
      description:
        '1000 MHz is not a supported SM clock of device 0; nearest supported: 990, 1005 MHz',
    },
  ]);
  s.send({
    begin: { seq: 6, instruction: 'INSTRUCTION_KIND_FORWARD', frequency_mhz: 990, t_ns: nowNs() },
  });
  s.send({
    begin: { seq: 6, instruction: 'INSTRUCTION_KIND_FORWARD', frequency_mhz: 990, t_ns: nowNs() },
  });
  expect((await s.error(6)).error?.violations).toEqual([
    { field: 'begin.seq', description: 'must be > 6 (the previous seq), got 6' },
  ]);
  s.send({ end: { seq: 99, t_ns: nowNs() } });
  expect((await s.error(99)).error?.violations).toEqual([
    { field: 'end.seq', description: 'no open Begin with seq 99' },
  ]);
  s.send({ end: { seq: 6, t_ns: '1' } });
  const tooEarly = await s.waitFor(
    (m) => m.find((x) => x.error?.error?.violations?.[0]?.field === 'end.t_ns')?.error ?? undefined,
  );
  expect(tooEarly.seq).toBe('6');
  expect(tooEarly.error?.violations?.[0]?.description).toMatch(
    /^must be ≥ the Begin's t_ns, got 1 \(/,
  );
  s.send({ open: { job_id: 'again', device_index: 1, rank: {} } });
  await s.waitFor((m) => m.find((x) => x.error?.error?.violations?.[0]?.field === 'open'));
  s.send({ end: { seq: 6, t_ns: nowNs() } });
  const m = await s.measurement(6);
  expect(m.frequency_applied_mhz).toBe(990);
  expect(sim.calls.filter((c) => c.startsWith('lockSmClock'))).toEqual(['lockSmClock(0,990)']);
});

test('interleaved 1F1B: a simulated device models virtual stage chunk × num_stages + pp_rank, and the chunk comes back', async () => {
  const sim = agent.module.core.backend as SimulatedBackend;
  const noted = jest.spyOn(sim, 'noteActivity');
  const s = session();
  // pp_rank 1 of 4 GPUs: chunk 2 is virtual stage 2·4 + 1 = 9.
  s.open('job-v', 0, { num_stages: 4 });
  await s.opened();
  s.send({
    begin: {
      seq: 1,
      instruction: 'INSTRUCTION_KIND_BACKWARD',
      microbatch: 0,
      frequency_mhz: 1005,
      t_ns: nowNs(),
      chunk: 2,
    },
  });
  s.send({ end: { seq: 1, t_ns: nowNs() } });
  const m = await s.measurement(1);
  expect(m.chunk).toBe(2);
  expect(noted.mock.calls.map((c) => c[1])).toContainEqual({ stage: 9, instruction: 'backward' });
  // 2·4 + 1 = 9 is fine; 64·4 + 1 ≥ 256 virtual stages is refused, nothing applied.
  s.send({
    begin: {
      seq: 2,
      instruction: 'INSTRUCTION_KIND_FORWARD',
      microbatch: 0,
      frequency_mhz: 990,
      t_ns: nowNs(),
      chunk: 64,
    },
  });
  expect((await s.error(2)).error?.violations).toEqual([
    {
      field: 'begin.chunk',
      description: 'chunk × num_stages (4) + pp_rank (1) must be < 256, got chunk 64',
    },
  ]);
  expect(sim.calls.filter((c) => c.startsWith('lockSmClock'))).toEqual(['lockSmClock(0,1005)']);
  noted.mockRestore();
});

test('an open whose pp_rank is outside its num_stages is refused', async () => {
  const s = session();
  s.open('job-v', 0, { num_stages: 1 });
  const err = await s.done;
  expect(err.code).toBe(status.INVALID_ARGUMENT);
  expect(decodeFieldViolations(err.metadata)).toEqual([
    { field: 'open.rank.pp_rank', description: 'must be < num_stages 1, got 1' },
  ]);
});

test('a first message other than open ends the stream with INVALID_ARGUMENT naming open', async () => {
  const s = session();
  s.send({ heartbeat: {} });
  const st = await s.done;
  expect(st.code).toBe(status.INVALID_ARGUMENT);
  expect(decodeFieldViolations(st.metadata)).toEqual([
    { field: 'open', description: 'is required as the first message of a session, got heartbeat' },
  ]);
});

test('a slow driver never blocks the stream or another device (per-device worker)', async () => {
  await agent.stop();
  agent = await startAgent({ simulatedDriverLatencyMs: 40, energySampleIntervalMs: 1000 });
  const s = session();
  s.open('job-a', 0);
  await s.opened();
  const clocks = [1410, 1005, 1200, 990, 1110, 855];
  clocks.forEach((f, i) => {
    s.send({
      begin: {
        seq: i + 1,
        instruction: 'INSTRUCTION_KIND_FORWARD',
        frequency_mhz: f,
        t_ns: nowNs(),
      },
    });
    s.send({ end: { seq: i + 1, t_ns: nowNs() } });
  });
  // Device 1's energy is read while device 0 still has ~6 × 40 ms of clock changes queued.
  const read = await call(agent.client, 'ReadEnergy', { device_index: 1 });
  expect(read.energy_j).toBeGreaterThan(0);
  expect(s.messages.filter((m) => m.measurement).length).toBeLessThan(clocks.length);
  const last = await s.measurement(clocks.length);
  expect(last.frequency_applied_mhz).toBe(855);
  const applied = s.messages
    .filter((m) => m.measurement)
    .map((m) => m.measurement!.frequency_applied_mhz);
  expect(applied).toEqual(clocks);
});

test('shutdown ends sessions with UNAVAILABLE, resets every device and marks the state file clean', async () => {
  const s = session();
  s.open('job-a', 0);
  await s.opened();
  s.send({
    begin: { seq: 1, instruction: 'INSTRUCTION_KIND_FORWARD', frequency_mhz: 1305, t_ns: nowNs() },
  });
  await until(async () => (await device(0)).locked_sm_clock_mhz === 1305);
  const sim = agent.module.core.backend as SimulatedBackend;
  await agent.module.close();
  expect((await s.done).code).toBe(status.UNAVAILABLE);
  expect(await sim.readLockedSmClockMhz(0)).toBe(0);
  expect(sim.memoryClockLocked(0)).toBe(false);
  const st = JSON.parse(fs.readFileSync(path.join(agent.dir, 'state.json'), 'utf8'));
  expect(st.cleanShutdown).toBe(true);
  expect(st.devices['0'].dirty).toBe(false);
  expect(st.devices['0'].sim.lockedSmClockMhz).toBe(0);
});
