import koffi, { type KoffiFunction } from 'koffi';

/**
 * A glibc function by its C signature (through koffi), or null where there is none: not Linux,
 * or a libc without it (musl has no `malloc_trim`). Callers degrade to "unknown" / "not done".
 */
export function libcFunction(signature: string): KoffiFunction | null {
  try {
    if (process.platform !== 'linux') return null;
    return koffi.load('libc.so.6').func(signature);
  } catch {
    return null;
  }
}
