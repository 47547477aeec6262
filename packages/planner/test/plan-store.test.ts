import { DeltaPlanStore } from '../src/plan-store';
import { rng } from './helpers';

/** A random walk of plans: each differs from the previous one in a few nodes. */
function walk(seed: number, numNodes: number, count: number): Uint16Array[] {
  const r = rng(seed);
  const plans: Uint16Array[] = [];
  const cur = new Uint16Array(numNodes);
  for (let k = 0; k < count; k++) {
    const changes = Math.floor(r() * 4);
    for (let c = 0; c < changes; c++) cur[Math.floor(r() * numNodes)] = Math.floor(r() * 30);
    plans.push(Uint16Array.from(cur));
  }
  return plans;
}

describe('DeltaPlanStore', () => {
  const plans = walk(7, 50, 300);

  it.each([1, 4, 64])('keyframe every %i: get(k) decodes every plan pushed', (every) => {
    const store = new DeltaPlanStore(50, every);
    for (const p of plans) store.push(p);
    expect(store.size).toBe(plans.length);
    plans.forEach((p, k) => expect(Array.from(store.get(k))).toEqual(Array.from(p)));
  });

  it('replay visits every plan in order', () => {
    const store = new DeltaPlanStore(50, 16);
    for (const p of plans) store.push(p);
    const seen: number[][] = [];
    store.replay((k, plan) => {
      expect(k).toBe(seen.length);
      seen.push(Array.from(plan));
    });
    expect(seen).toEqual(plans.map((p) => Array.from(p)));
  });

  it('stores only the changes: far smaller than the full plans', () => {
    const store = new DeltaPlanStore(50, 64);
    for (const p of plans) store.push(p);
    const json = store.toJSON();
    const changed = plans.reduce(
      (sum, p, k) => sum + (k === 0 ? 50 : p.filter((x, i) => x !== plans[k - 1]![i]).length),
      0,
    );
    expect(json.deltaNodes.length).toBe(changed);
    expect(json.keyframes.length).toBe(Math.ceil(plans.length / 64));
    expect(store.byteSize()).toBeLessThan(plans.length * 50 * 2);
  });

  it('survives toJSON → JSON → fromJSON, and keeps appending after it', () => {
    const store = new DeltaPlanStore(50, 8);
    for (const p of plans.slice(0, 100)) store.push(p);
    const back = DeltaPlanStore.fromJSON(JSON.parse(JSON.stringify(store.toJSON())));
    for (const p of plans.slice(100)) back.push(p);
    plans.forEach((p, k) => expect(Array.from(back.get(k))).toEqual(Array.from(p)));
  });

  it.each([-1, 300, 1.5, Number.NaN])('get(%p) is a RangeError', (k) => {
    const store = new DeltaPlanStore(50);
    for (const p of plans) store.push(p);
    expect(() => store.get(k)).toThrow(RangeError);
  });
});
