import { Option } from 'commander';

/**
 * Reading `perseus serve` flags (commander hands every value over as a string): the one parser the
 * agent, profiler and optimizer flag modules share. Absent flags are undefined, so the service's
 * config module applies its PERSEUS_* environment and defaults.
 */
export type ParsedFlags = Record<string, unknown>;

/** `optimizerStragglerMargin` → `--optimizer-straggler-margin` (for error messages). */
export const flagName = (key: string): string =>
  `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** A string flag; undefined when absent or empty. */
export function flagString(flags: ParsedFlags, key: string): string | undefined {
  const v = flags[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** A numeric flag; undefined when absent; an error naming the flag when not a finite number. */
export function flagNumber(flags: ParsedFlags, key: string): number | undefined {
  const v = flags[key];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (typeof v === 'boolean' || !Number.isFinite(n))
    throw new Error(`${flagName(key)} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

/**
 * A valued flag that commander also fills from `env` (flag wins), so `--help` names the variable
 * (`[env: PERSEUS_…]`) from the same declaration the value comes from.
 */
export function envOption(flags: string, env: string, description: string): Option {
  return new Option(flags, description).env(env);
}
