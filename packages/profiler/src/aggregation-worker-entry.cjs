// Worker-thread entry for cell aggregation. The profiler's sources are TypeScript run through tsx
// (CLI) or ts-jest (tests); a worker thread starts a fresh module system that neither hooks, so this
// small CommonJS file registers tsx's require hook before loading the TypeScript worker body.
'use strict';
require('tsx/cjs/api').register();
require('./aggregation-worker.ts');
