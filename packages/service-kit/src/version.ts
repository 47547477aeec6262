import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The suite's version: every @perseus package carries the same one (tools/build/check-versions.cjs
 * keeps them equal). Read from this package's package.json, which sits one level above both src/
 * and dist/, so the sources and the built or installed package report the same string.
 */
export const PERSEUS_VERSION: string = (
  JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;
