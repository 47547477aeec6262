// Build step of @perseus/proto: copies the repository's .proto sources into dist/protos, so the
// packed package loads its wire contract without the repository (see packages/proto/src/loader.ts).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const from = path.resolve(__dirname, '..', '..', 'protos');
const to = path.resolve(process.cwd(), 'dist', 'protos');
fs.rmSync(to, { recursive: true, force: true });
fs.cpSync(from, to, {
  recursive: true,
  filter: (src) => fs.statSync(src).isDirectory() || src.endsWith('.proto'),
});
