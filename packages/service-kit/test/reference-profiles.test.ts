import * as fs from 'node:fs';
import { GPT3_A100_CSV, GPT3_A40_CSV, REFERENCE_PROFILE_DIR } from '../src';

describe('reference profiles', () => {
  it('point at the paper artifact CSVs in the repository', () => {
    for (const file of [GPT3_A100_CSV, GPT3_A40_CSV]) {
      expect(file.startsWith(REFERENCE_PROFILE_DIR)).toBe(true);
      expect(fs.readFileSync(file, 'utf8').split('\n')[0]?.trim()).toBe(
        'stage,instruction,frequency,time,energy',
      );
    }
  });
});
