import { ClientClock } from '../src/clock-offset';

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
