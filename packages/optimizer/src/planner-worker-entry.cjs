// Worker-thread entry for planning. The optimizer's sources are TypeScript run through tsx (CLI)
// or ts-jest (tests); a worker thread starts a fresh module system that neither of those hooks, so
// this small CommonJS file registers tsx's require hook before loading the TypeScript worker body.
'use strict';
require('tsx/cjs/api').register();
require('./planner-worker.ts');
