import pino from 'pino';

export type Logger = pino.Logger;

/**
 * The one structured logger: JSON lines to stderr, constant messages, facts in fields.
 * Level from `PERSEUS_LOG_LEVEL` (default `info`; `silent` under jest).
 */
export function createLogger(name: string, level?: string): Logger {
  const fallback = process.env['JEST_WORKER_ID'] !== undefined ? 'silent' : 'info';
  return pino(
    { name, level: level ?? process.env['PERSEUS_LOG_LEVEL'] ?? fallback },
    pino.destination(2),
  );
}
