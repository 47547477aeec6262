/**
 * Identity of a job generation (issue 12 §1): a spec hash every rank can compare, and the job id a
 * generation's measurements are filed under at the profiler, so that re-registering an id with a
 * new spec never mixes the old generation's profile or plans into the new one.
 */
import { createHash } from 'node:crypto';
import type { JobSpec } from './types';

/** JSON with object keys sorted at every level: one text per value, whatever the key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** SHA-256 of the spec's canonical form, 64 lowercase hex characters. */
export function specHash(spec: JobSpec): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex');
}

/** Longest job id the services accept (service-kit's ID_PATTERN). */
const MAX_ID_LENGTH = 128;

/**
 * The profiler job id of a generation: the job id itself for generation 1 (what clients that
 * predate generations report under), `<job_id>.g<generation>` after; an id too long for the suffix
 * is replaced by a digest of it so the result stays a valid id.
 */
export function profileJobIdFor(jobId: string, generation: number): string {
  if (generation <= 1) return jobId;
  const suffix = `.g${generation}`;
  const base =
    jobId.length + suffix.length <= MAX_ID_LENGTH
      ? jobId
      : createHash('sha256').update(jobId).digest('hex').slice(0, 40);
  return `${base}${suffix}`;
}
