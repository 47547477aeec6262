import { releaseFreedMemory } from '../src';

describe('releaseFreedMemory', () => {
  // glibc's malloc_trim exists on glibc Linux only; elsewhere nothing is released.
  const header = (process.report.getReport() as { header: { glibcVersionRuntime?: string } })
    .header;
  const glibc = process.platform === 'linux' && header.glibcVersionRuntime !== undefined;

  it(`calls malloc_trim where glibc has it (here: ${glibc ? 'yes' : 'no'}), every time`, () => {
    expect(releaseFreedMemory()).toBe(glibc);
    expect(releaseFreedMemory()).toBe(glibc);
  });
});
