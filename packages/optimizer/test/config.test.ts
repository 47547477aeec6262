import { createLogger } from '@perseus/service-kit';
import { DEFAULT_CONFIG, createOptimizerModule, validateOptimizerConfig } from '../src';

test.each([
  [{ stragglerMargin: Number.NaN }, 'stragglerMargin'],
  [{ stragglerMargin: 0 }, 'stragglerMargin'],
  [{ stragglerWindow: 0 }, 'stragglerWindow'],
  [{ stragglerWindow: 2.5 }, 'stragglerWindow'],
  [{ exactBudgetS: -1 }, 'PERSEUS_OPTIMIZER_EXACT_BUDGET_S'],
  [{ exactBudgetS: Number.NaN }, 'exactBudgetS'],
  [{ exactBudgetS: 601 }, 'exactBudgetS'],
  [{ dataDir: '' }, 'dataDir'],
])('%j is refused, naming %s', (over, name) => {
  expect(() => validateOptimizerConfig({ ...DEFAULT_CONFIG, ...over })).toThrow(name);
});

test('the module refuses to start on an invalid configuration', async () => {
  await expect(
    createOptimizerModule({
      logger: createLogger('t', 'silent'),
      dataDir: ':memory:',
      stragglerWindow: 0,
    }),
  ).rejects.toThrow('PERSEUS_OPTIMIZER_STRAGGLER_WINDOW');
  expect(validateOptimizerConfig({ ...DEFAULT_CONFIG })).toEqual(DEFAULT_CONFIG);
});
