import type { KoffiFunction } from 'koffi';

/**
 * Runs a koffi function on a libuv worker thread (`.async`) so a slow driver call never blocks the
 * event loop (gRPC streams, timers, other devices). Output values go through Buffers, which live in
 * native memory and are safe to fill from the worker thread.
 */
export function callAsync(fn: KoffiFunction, ...args: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => {
    (fn.async as (...a: unknown[]) => void)(...args, (err: unknown, res: unknown) => {
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve(Number(res));
    });
  });
}

/** A NUL-terminated C string from a Buffer. */
export function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.toString('utf8', 0, end < 0 ? buf.length : end);
}
