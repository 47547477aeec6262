#!/usr/bin/env node
// The installed `perseus` command: the compiled CLI (npm run build, or the packed package's dist/).
// Development runs the TypeScript sources through bin/perseus at the repository root instead.
'use strict';
require('../dist/main.js').runCli();
