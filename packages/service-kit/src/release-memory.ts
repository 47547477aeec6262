import { libcFunction } from './libc';

type MallocTrim = (pad: number) => number;
let mallocTrim: MallocTrim | null | undefined;

function loadMallocTrim(): MallocTrim | null {
  if (mallocTrim !== undefined) return mallocTrim;
  const fn = libcFunction('int malloc_trim(size_t pad)');
  mallocTrim = fn && ((pad) => Number(fn(pad)));
  return mallocTrim;
}

/**
 * Hands memory that is free inside the C heap back to the kernel (glibc `malloc_trim(0)`), where
 * it is available; returns whether it ran. A worker thread that has ended leaves its C-heap arena
 * full of free pages that glibc keeps for reuse: after the planner's polish worker (HiGHS in
 * WASM, ~100 MB) they kept ~50 MB of the process's resident memory until exit.
 */
export function releaseFreedMemory(): boolean {
  const trim = loadMallocTrim();
  if (trim === null) return false;
  trim(0);
  return true;
}
