import { ClientClock, ClockRateError } from '../src/clock-offset';

test('a client on this host (first timestamp within 10 s of the agent clock) is used as is', () => {
  const c = new ClientClock();
  expect(c.map(1_000_000_000n, 1_002_000_000n)).toBe(1_000_000_000n);
  expect(c.sameHost).toBe(true);
  // Later events keep offset 0, however late they arrive.
  expect(c.map(2_000_000_000n, 9_000_000_000n)).toBe(2_000_000_000n);
});

test("another host's clock: the offset is the smallest receive-minus-send seen", () => {
  const c = new ClientClock();
  const skew = 3_600_000_000_000n; // the client's clock is an hour behind
  // First event took 5 ms in transit, the second 1 ms: the estimate tightens to the faster one.
  expect(c.map(100n, 100n + skew + 5_000_000n)).toBe(100n + skew + 5_000_000n);
  expect(c.sameHost).toBe(false);
  expect(c.map(200_000_000n, 200_000_000n + skew + 1_000_000n)).toBe(
    200_000_000n + skew + 1_000_000n,
  );
  // A slower event does not loosen it: mapped with the 1 ms estimate.
  expect(c.map(300_000_000n, 300_000_000n + skew + 9_000_000n)).toBe(
    300_000_000n + skew + 1_000_000n,
  );
});

describe("a clock that runs at another rate than the agent's is refused", () => {
  const hour = 3_600_000_000_000n; // another host's clock, an hour away
  const s = 1_000_000_000n;

  test('4× fast (an emulator at time scale 0.25 against an agent on real time)', () => {
    const c = new ClientClock();
    c.map(hour, 1n * s);
    // 1 s of agent time is 4 s of client time: 3 s apart, within the 5 s allowance.
    expect(() => c.map(hour + 4n * s, 2n * s)).not.toThrow();
    // 2 s later: 8 s against 2 s.
    expect(() => c.map(hour + 8n * s, 3n * s)).toThrow(ClockRateError);
    expect(() => c.map(hour + 8n * s, 3n * s)).toThrow(
      /advanced 8\.00 s while the agent's advanced 2\.00 s \(4\.00×\).*--agent-sim-time-scale/,
    );
  });

  test('2× slow', () => {
    const c = new ClientClock();
    c.map(hour, 0n);
    expect(() => c.map(hour + 4n * s, 8n * s)).not.toThrow();
    expect(() => c.map(hour + 6n * s, 12n * s)).toThrow(ClockRateError);
  });

  test('one rate: late and early events within transport delay are fine, however long the session', () => {
    const c = new ClientClock();
    c.map(hour, 2n * s); // the first event took 2 s to arrive
    for (let t = 1n; t < 1000n; t += 7n) {
      // later ones arrive at once, or 4 s late; the clocks drift by 50 ppm
      const late = t % 2n === 0n ? 4n * s : 0n;
      expect(() => c.map(hour + t * s, t * s + (t * s) / 20_000n + late)).not.toThrow();
    }
  });

  test('a same-host client is not rate-checked here (a future timestamp is refused per event)', () => {
    const c = new ClientClock();
    c.map(1n * s, 1n * s);
    expect(() => c.map(100n * s, 2n * s)).not.toThrow();
  });
});
