import { seededUniform, validatePlannerInput } from '../src';
import { Discretizer } from '../src/discretizer';
import { longestPath } from '../src/emulator';
import { randomCase } from './random-pipelines';

/**
 * The discretizer re-rounds only the durations that changed since its last call, reuses that
 * plan's earliest finishes and patches the greedy's candidate order: check that its results match
 * a fresh discretizer's on every call of a sequence where a few durations move at a time (as
 * along the relaxed sweep).
 */
describe('Discretizer reuse between samples', () => {
  it.each([3, 11, 42])('matches a fresh discretizer along a walk (seed %i)', (seed) => {
    const v = validatePlannerInput(randomCase(seed, 200, 'generic').input);
    const { dag, tables } = v;
    const n = dag.numNodes;
    const r = seededUniform(seed);
    const span = (i: number): [number, number] => {
      const t = tables[dag.table[i]!]!.timeS;
      return [t[0]!, t[t.length - 1]!];
    };
    const dur = Float64Array.from({ length: n }, (_, i) => {
      const [lo, hi] = span(i);
      return lo + r() * (hi - lo);
    });
    const reused = new Discretizer(v, n);
    for (let step = 0; step < 40; step++) {
      for (let k = 0; k < 3; k++) {
        const i = Math.floor(r() * n);
        const [lo, hi] = span(i);
        dur[i] = lo + r() * (hi - lo);
      }
      // At or just above the relaxed durations' own makespan: tight, so that reclamation and the
      // greedy depend on the windows.
      const budgetS = longestPath(dag, dur) * (1 + 0.01 * (step % 4));
      const fresh = new Discretizer(v, n);
      const expected = fresh.run(dur, budgetS);
      expect(reused.run(dur, budgetS)).toEqual(expected);
      expect(Array.from(reused.choice)).toEqual(Array.from(fresh.choice));
      // Runs of one score kind, so that the reused candidate order is patched, not rebuilt; an
      // infinite current cost keeps every greedy result, so any change in its steps shows.
      const perSecond = step % 20 < 10;
      const none = { timeS: Infinity, energyJ: Infinity };
      const greedyFresh = fresh.greedyReclaim(dur, budgetS, perSecond, none);
      expect(reused.greedyReclaim(dur, budgetS, perSecond, none)).toEqual(greedyFresh);
      expect(Array.from(reused.choice)).toEqual(Array.from(fresh.choice));
      expect(Array.from(reused.times)).toEqual(Array.from(fresh.times));
    }
  });
});
