// Worker-thread entry for cell aggregation. A worker thread starts a fresh module system: built
// (dist/) it loads the compiled worker body next to it; run from the TypeScript sources (tsx for the
// CLI, ts-jest for tests), neither hook reaches the thread, so it registers tsx's require hook first.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const compiled = path.join(__dirname, 'aggregation-worker.js');
if (fs.existsSync(compiled)) {
  require(compiled);
} else {
  // The repository's tsconfig maps @perseus/* to the sources, whatever the working directory.
  process.env.TSX_TSCONFIG_PATH ??= path.resolve(__dirname, '..', '..', '..', 'tsconfig.json');
  require('tsx/cjs/api').register();
  require('./aggregation-worker.ts');
}
