import { seededUniform } from '../src';
import { StepHeap } from '../src/step-heap';

/** Every pop until empty. */
function drain(heap: StepHeap): number[] {
  const out: number[] = [];
  while (heap.size > 0) out.push(heap.pop());
  return out;
}

describe('StepHeap', () => {
  // Scores drawn from a few values so that ties (broken by the lower node id) are common.
  it.each([0, 1, 2, 3, 4])('built from adds pops as pushes do (seed %i)', (seed) => {
    const r = seededUniform(seed);
    const n = 1 + Math.floor(r() * 300);
    const scores = Array.from({ length: n }, () => 1 + Math.floor(r() * 7));
    const pushed = new StepHeap(n);
    const built = new StepHeap(n);
    scores.forEach((sc, i) => {
      pushed.push(i, sc);
      built.add(i, sc);
    });
    built.build();
    const expected = scores
      .map((sc, i) => [sc, i] as const)
      .sort((a, b) => b[0] - a[0] || a[1] - b[1])
      .map(([, i]) => i);
    expect(drain(pushed)).toEqual(expected);
    expect(drain(built)).toEqual(expected);
  });

  it('interleaves pushes with pops of a built heap', () => {
    const heap = new StepHeap(8);
    heap.add(0, 1);
    heap.add(1, 5);
    heap.add(2, 3);
    heap.build();
    expect(heap.pop()).toBe(1);
    heap.push(3, 3);
    heap.push(4, 9);
    expect(drain(heap)).toEqual([4, 2, 3, 0]);
  });
});
