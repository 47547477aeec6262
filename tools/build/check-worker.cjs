// Run from an installed control role's folder (node -e, so require resolves there): plans a 2-stage frontier in the optimizer's planner worker
// thread (compiled dist/, no tsx) and prints the number of frontier points.
'use strict';
const { WorkerFrontierPlanner } = require('@perseus/optimizer/dist/planner-pool.js');

const opts = (base) => [
  { frequencyMhz: 1410, timeS: base, energyJ: base * 400 },
  { frequencyMhz: 1200, timeS: base * 1.1, energyJ: base * 330 },
  { frequencyMhz: 1000, timeS: base * 1.3, energyJ: base * 300 },
];
const stage = { forward: opts(0.01), backward: opts(0.02) };
const planner = new WorkerFrontierPlanner(0);
// The pool unrefs its worker (a server's event loop keeps it alive); this script holds the loop.
const deadline = setTimeout(() => {
  process.stderr.write('planner worker: no frontier within 60 s\n');
  process.exit(1);
}, 60_000);
planner
  .plan({
    profile: { stages: [stage, stage] },
    pipeline: { schedule: '1f1b', numStages: 2, numMicrobatches: 4 },
    blockingPowerW: 60,
    unitTimeS: 0.001,
  })
  .then(async ({ frontier }) => {
    process.stdout.write(`frontier points: ${frontier.points.length}\n`);
    await planner.close();
    clearTimeout(deadline);
  })
  .catch((err) => {
    process.stderr.write(`planner worker failed: ${err.stack ?? err}\n`);
    process.exit(1);
  });
