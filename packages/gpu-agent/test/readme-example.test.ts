import * as fs from 'node:fs';
import * as path from 'node:path';
import { example } from './fixtures/readme-example';
import { tempDir } from './helpers';

test('the README example is the fixture file, and it measures a simulated A100 instruction', async () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  const block = /<!-- example:start -->\n```ts\n([\s\S]*?)```\n<!-- example:end -->/.exec(
    readme,
  )?.[1];
  // The README shows the package import; the fixture imports the sources (same module).
  const fixture = fs.readFileSync(path.join(__dirname, 'fixtures', 'readme-example.ts'), 'utf8');
  expect(block).toBe(fixture.replace("from '../../src';", "from '@perseus/gpu-agent';"));
  const { energyJ, timeS } = await example(tempDir());
  // ~100 ms (timer slack makes it a little longer) at stage 1 forward, 1005 MHz: the simulated A100
  // draws 267.4 W there, so energy / time is that power up to the 10 ms energy sampling.
  expect(timeS).toBeGreaterThanOrEqual(0.099);
  expect(energyJ / timeS).toBeGreaterThan(267.4 * 0.97);
  expect(energyJ / timeS).toBeLessThan(267.4 * 1.03);
});
