import { status } from '@grpc/grpc-js';
import type { RunningAgent } from './helpers';
import { SessionClient, call, sleep, startAgent, until } from './helpers';

// An emulated trainer at time scale 0.25 stamps its hooks with CLOCK_MONOTONIC / 0.25 and sleeps a
// quarter of each instruction's simulated time (packages/client-python/perseus/emulate/trainer.py).
// The agent used to map that 4× clock as "another host": the offset (smallest receive − send)
// fell with every event, every timestamp became its own receipt time, and an instruction measured
// the gap between two receipts — 1/4 of its time, and ~0 when a busy host sent the Begin and End
// together. dp-detect.sh runs then planned from a profile of 0.1 ms instructions (issue 12).

/** A100 SXM stage 1 forward at 1005 MHz (sosp24 CSV): 17.781312 J / 0.066485689 s. */
const A100_S1_FWD_1005_W = 17.781311999999918 / 0.06648568916320799;
const TIME_SCALE = 0.25;

let agent: RunningAgent | undefined;
const sessions: SessionClient[] = [];

afterEach(async () => {
  for (const s of sessions.splice(0)) s.stream.cancel();
  await agent?.stop();
  agent = undefined;
});

function session(a: RunningAgent): SessionClient {
  const s = new SessionClient(a.client);
  sessions.push(s);
  return s;
}

/** The emulated trainer's clock: CLOCK_MONOTONIC / time scale, ns. */
const scaledNow = (): bigint => process.hrtime.bigint() * 4n;

test('a time-scaled trainer measures its instructions in simulated seconds on an agent of the same scale, even when its Begin and End arrive together', async () => {
  agent = await startAgent({ simulatedTimeScale: TIME_SCALE, energySampleIntervalMs: 20 });
  const a = agent;
  const s = session(a);
  s.open('job-scaled', 0);
  await s.opened();
  // Warm-up pair (the first events of a fresh stream are slow to arrive).
  s.send({
    begin: {
      seq: 1,
      instruction: 'INSTRUCTION_KIND_FORWARD',
      microbatch: 0,
      frequency_mhz: 1410,
      t_ns: String(scaledNow()),
    },
  });
  s.send({ end: { seq: 1, t_ns: String(scaledNow()) } });
  await s.measurement(1);
  for (let seq = 2; seq < 6; seq++) {
    // The instruction runs 200 ms of simulated time (50 ms of wall time); a busy host's sender
    // thread delivers its Begin only together with its End, after it finished.
    const begin = scaledNow();
    const end = begin + 200_000_000n;
    await until(() => scaledNow() >= end, 5000, 5);
    s.send({
      begin: {
        seq,
        instruction: 'INSTRUCTION_KIND_FORWARD',
        microbatch: seq,
        frequency_mhz: 1005,
        t_ns: String(begin),
      },
    });
    s.send({ end: { seq, t_ns: String(end) } });
    const m = await s.measurement(seq);
    expect(m.time_s).toBeCloseTo(0.2, 9);
    expect(m.energy_j).toBeCloseTo(A100_S1_FWD_1005_W * 0.2, 6);
    expect(m.frequency_applied_mhz).toBe(1005);
  }
});

test("a client clock that runs at another rate than the agent's ends the session with FAILED_PRECONDITION and a device reset, instead of measuring receipt gaps", async () => {
  agent = await startAgent({ energySampleIntervalMs: 20 }); // real time (scale 1)
  const a = agent;
  const s = session(a);
  s.open('job-fast-clock', 0);
  await s.opened();
  // Another host's clock (an hour ahead of this one, so never taken for it) that runs 4× fast.
  const origin = process.hrtime.bigint();
  const fast = (): string =>
    String(origin + 3_600_000_000_000n + (process.hrtime.bigint() - origin) * 4n);
  let seq = 0;
  let finished = false;
  void s.done.then(() => (finished = true));
  const deadline = Date.now() + 20_000;
  while (!finished && Date.now() < deadline) {
    seq += 1;
    const begin = fast();
    await sleep(25);
    s.send({
      begin: {
        seq,
        instruction: 'INSTRUCTION_KIND_FORWARD',
        microbatch: 0,
        frequency_mhz: 1005,
        t_ns: begin,
      },
    });
    s.send({ end: { seq, t_ns: fast() } });
  }
  const st = await s.done;
  expect(st.code).toBe(status.FAILED_PRECONDITION);
  expect(st.details).toContain('--agent-sim-time-scale');
  expect(st.details).toMatch(/advanced [\d.]+ s while the agent's advanced [\d.]+ s/);
  await until(async () => {
    const d = (await call(a.client, 'ListDevices', {})).devices[0]!;
    return d.locked_sm_clock_mhz === 0 && d.lease === null;
  });
});
