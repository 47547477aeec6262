// One version for the suite: the root package.json, every @perseus package (and the CLI's peer
// ranges on the services), the Python distribution (pyproject.toml) and perseus.__version__ must
// all carry the same version. Exits 1 naming each mismatch.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const read = (p) => fs.readFileSync(path.join(root, p), 'utf8');
const want = JSON.parse(read('package.json')).version;
const found = [];
for (const dir of fs.readdirSync(path.join(root, 'packages'))) {
  const file = path.join('packages', dir, 'package.json');
  if (!fs.existsSync(path.join(root, file))) continue;
  const pkg = JSON.parse(read(file));
  found.push([file, pkg.version]);
  for (const [name, range] of Object.entries(pkg.peerDependencies ?? {})) {
    if (name.startsWith('@perseus/')) found.push([`${file} peerDependencies ${name}`, range]);
  }
}
const pyproject = read('packages/client-python/pyproject.toml').match(/^version = "([^"]+)"/m);
found.push(['packages/client-python/pyproject.toml', pyproject?.[1]]);
const init = read('packages/client-python/perseus/__init__.py').match(/^__version__ = "([^"]+)"/m);
found.push(['perseus.__version__', init?.[1]]);
const bad = found.filter(([, v]) => v !== want);
for (const [where, v] of bad)
  process.stderr.write(`check-versions: ${where} is ${v}, want ${want}\n`);
if (bad.length > 0) process.exit(1);
process.stdout.write(`check-versions: ${found.length} places carry ${want}\n`);
