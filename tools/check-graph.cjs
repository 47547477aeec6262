// Checks the nx project graph: every docs/architecture.md §2 package is a project, there is no dependency
// cycle, and the planner depends on nothing (in particular on no gRPC package).
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'nx-graph-')), 'graph.json');
execFileSync('npx', ['nx', 'graph', `--file=${file}`], { stdio: 'ignore' });
const { graph } = JSON.parse(fs.readFileSync(file, 'utf8'));
const deps = Object.fromEntries(
  Object.entries(graph.dependencies).map(([k, v]) => [k, v.map((d) => d.target)]),
);
const required = [
  '@perseus/proto',
  '@perseus/planner',
  '@perseus/gpu-agent',
  '@perseus/profiler',
  '@perseus/optimizer',
  '@perseus/cli',
  'client-python',
];
const problems = required.filter((p) => !(p in deps)).map((p) => `missing project ${p}`);
const planner = deps['@perseus/planner'] ?? [];
if (planner.length > 0) problems.push(`planner depends on ${planner.join(', ')}`);
const plannerPkg = JSON.parse(fs.readFileSync('packages/planner/package.json', 'utf8'));
for (const d of Object.keys({ ...plannerPkg.dependencies, ...plannerPkg.peerDependencies })) {
  if (/grpc|protobuf/.test(d)) problems.push(`planner package.json depends on ${d}`);
}
const state = {};
const visit = (n, stack) => {
  if (state[n] === 'done') return;
  if (state[n] === 'active') {
    problems.push(`cycle: ${[...stack, n].join(' -> ')}`);
    return;
  }
  state[n] = 'active';
  for (const m of deps[n] ?? []) visit(m, [...stack, n]);
  state[n] = 'done';
};
for (const n of Object.keys(deps)) visit(n, []);
if (problems.length > 0) {
  console.error(`project graph check failed:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(
  `project graph ok: ${Object.keys(deps).length} projects, no cycle, planner has no dependencies`,
);
