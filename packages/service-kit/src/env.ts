/** Reading `PERSEUS_*` environment variables with clear errors (each service's config.ts uses these). */

export function envString(
  name: string,
  fallback: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const v = env[name];
  return v === undefined || v === '' ? fallback : v;
}

export function envNumber(
  name: string,
  fallback: number,
  env: NodeJS.ProcessEnv = process.env,
): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

export function envBool(
  name: string,
  fallback: boolean,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new Error(`${name} must be true or false, got ${JSON.stringify(v)}`);
}

/**
 * Normalises a listen address: `unix:/path`, `unix:///path`, `host:port`, `[::1]:port`, or a bare
 * absolute path (taken as a Unix socket). Returns what grpc-js `bindAsync` accepts.
 */
export function normalizeListenAddress(address: string): string {
  const a = address.trim();
  if (a.startsWith('/')) return `unix:${a}`;
  if (a.startsWith('unix:')) return a;
  if (a.startsWith('tcp://')) return a.slice('tcp://'.length);
  if (/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d+$/.test(a)) return a;
  throw new Error(`listen address must be host:port or unix:/path, got ${JSON.stringify(address)}`);
}

/** The filesystem path of a `unix:` address, else undefined. */
export function unixSocketPath(address: string): string | undefined {
  if (!address.startsWith('unix:')) return undefined;
  const rest = address.slice('unix:'.length);
  return rest.startsWith('//') ? rest.slice(2) : rest;
}
