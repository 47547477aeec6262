/** Times our planner on one case in a fresh process (so peak RSS is ours alone); writes the frontier JSON. */
import { readFileSync, writeFileSync } from 'node:fs';
import { computeFrontier, parseProfileCsv } from '../../../packages/planner/src';

const [csv, stages, mbs, power, unit, out] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string,
];
const t0 = performance.now();
const c0 = process.cpuUsage();
const frontier = computeFrontier({
  profile: parseProfileCsv(readFileSync(csv, 'utf8')),
  pipeline: { schedule: '1f1b', numStages: Number(stages), numMicrobatches: Number(mbs) },
  blockingPowerW: Number(power),
  unitTimeS: Number(unit),
});
const wallS = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(c0);
const cpuS = (cpu.user + cpu.system) / 1e6;
const maxRssMiB = process.resourceUsage().maxRSS / 1024;
writeFileSync(out, JSON.stringify(frontier.toJSON()));
process.stdout.write(JSON.stringify({ wallS, cpuS, maxRssMiB }) + '\n');
