/**
 * Access control for the profiler and the optimizer (the agent's model, issue 13): a local listener
 * (Unix socket, or a TCP address that resolves only to loopback) may run open; any other address
 * needs TLS and bearer tokens. Tokens carry scopes — `read` (queries), `report` (measurements,
 * iterations, registration), `control` (policies, stragglers, offline planning) — and may be limited
 * to some jobs: a `report` or `control` call naming a job the token does not cover is
 * PERMISSION_DENIED.
 *
 * Token file: one `<name> <scope>[,<scope>…] <secret> [jobs=<id>[,<id>…]|jobs=*]` per line, `#`
 * comments; secrets ≥ 16 characters; the file must not be readable by group or others (like ssh's
 * private keys). Only a SHA-256 of each secret is kept in memory.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import * as dns from 'node:dns';
import * as fs from 'node:fs';
import * as net from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import { PermissionDeniedError, UnauthenticatedError } from './errors';
import { unixSocketPath } from './env';

/** `admin` exists only on the GPU agent (AdminReset): the profiler's and optimizer's files refuse it. */
export type AccessScope = 'read' | 'report' | 'control' | 'admin';
/** The scopes of the profiler's and optimizer's token files. */
export const SERVICE_SCOPES: readonly AccessScope[] = ['read', 'report', 'control'];

export interface AccessToken {
  name: string;
  scopes: ReadonlySet<AccessScope>;
  /** Jobs `report`/`control` calls may name; undefined = every job. */
  jobs: ReadonlySet<string> | undefined;
  digest: Buffer;
}

function sha256(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Parses a token file's text (see the module comment); throws naming the line. */
export function parseAccessTokens(
  text: string,
  source = 'token file',
  allowed: readonly AccessScope[] = SERVICE_SCOPES,
): AccessToken[] {
  const out: AccessToken[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${source}:${i + 1}`;
    const parts = line.split(/\s+/);
    const [name, scopeText, secret, jobsText] = parts;
    if (parts.length < 3 || parts.length > 4 || !name || !scopeText || !secret)
      throw new Error(`${where}: expected "<name> <scope>[,<scope>] <secret> [jobs=<id>,…|*]"`);
    const scopes = new Set<AccessScope>();
    for (const s of scopeText.split(',')) {
      if (!(allowed as readonly string[]).includes(s))
        throw new Error(
          `${where}: scope must be ${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1) ?? ''}, got ${JSON.stringify(s)}`,
        );
      scopes.add(s as AccessScope);
    }
    if (secret.length < 16)
      throw new Error(`${where}: secret of ${name} must have at least 16 characters`);
    let jobs: Set<string> | undefined;
    if (jobsText !== undefined) {
      if (!jobsText.startsWith('jobs='))
        throw new Error(`${where}: the fourth field must be jobs=<id>,… or jobs=*`);
      const list = jobsText.slice('jobs='.length);
      if (list !== '*') jobs = new Set(list.split(',').filter((j) => j !== ''));
    }
    out.push({ name, scopes, jobs, digest: sha256(secret) });
  });
  return out;
}

/** Reads a token file; refuses one that group or others can read (its secrets would be theirs). */
export function loadAccessTokens(
  path: string,
  allowed: readonly AccessScope[] = SERVICE_SCOPES,
): AccessToken[] {
  const st = fs.statSync(path);
  if ((st.mode & 0o077) !== 0)
    throw new Error(
      `token file ${path} is readable by group or others (mode 0${(st.mode & 0o777).toString(8)}); chmod 600 it`,
    );
  return parseAccessTokens(fs.readFileSync(path, 'utf8'), path, allowed);
}

/** Who made a call: a token's name, or `anonymous` on an open local listener. */
export interface Caller {
  identity: string;
  token: AccessToken | undefined;
}

/**
 * The access rule of one listener: with `requireToken` every call must present
 * `authorization: Bearer <secret>`; without, anonymous calls pass (open local listener) but a
 * presented token is still checked.
 */
export class AccessPolicy {
  constructor(
    private readonly tokens: readonly AccessToken[],
    readonly requireToken: boolean,
  ) {}

  /** A policy that lets everything through (local listener, no token file). */
  static open(): AccessPolicy {
    return new AccessPolicy([], false);
  }

  /** Who is calling; UNAUTHENTICATED for a missing (when required) or unknown token. */
  identify(metadata: grpc.Metadata): Caller {
    const header = metadata.get('authorization')[0];
    const presented =
      typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header)?.[1] : undefined;
    if (presented === undefined) {
      if (this.requireToken)
        throw new UnauthenticatedError('this listener requires "authorization: Bearer <token>"');
      return { identity: 'anonymous', token: undefined };
    }
    const d = sha256(presented);
    const token = this.tokens.find((t) => timingSafeEqual(t.digest, d));
    if (token === undefined) throw new UnauthenticatedError('unknown token');
    return { identity: `token:${token.name}`, token };
  }

  /** Throws PERMISSION_DENIED unless `caller` may use `scope` (on `jobId`, when given). */
  authorize(caller: Caller, scope: AccessScope, jobId?: string): void {
    const t = caller.token;
    if (t === undefined) return; // anonymous: only possible on an open listener
    if (!t.scopes.has(scope))
      throw new PermissionDeniedError(
        `token ${JSON.stringify(t.name)} lacks scope ${scope} (has ${[...t.scopes].join(',')})`,
      );
    if (scope !== 'read' && jobId !== undefined && t.jobs !== undefined && !t.jobs.has(jobId))
      throw new PermissionDeniedError(
        `token ${JSON.stringify(t.name)} may not ${scope} job ${JSON.stringify(jobId)}`,
      );
  }

  /** identify + authorize. */
  check(metadata: grpc.Metadata, scope: AccessScope, jobId?: string): Caller {
    const caller = this.identify(metadata);
    this.authorize(caller, scope, jobId);
    return caller;
  }
}

/** A policy settled once the listener's bound address is known. */
export class ListenerAccess {
  constructor(public current: AccessPolicy = new AccessPolicy([], true)) {}
}

/**
 * Whether `address` (a bound listen address) is local: a Unix socket, or a host whose every
 * resolved address is loopback (a name is resolved, not matched as text: `127.evil.test` may
 * resolve anywhere).
 */
export async function isLocalAddress(
  address: string,
  lookup: (host: string) => Promise<string[]> = systemLookup,
): Promise<boolean> {
  if (unixSocketPath(address) !== undefined) return true;
  const host = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const loopback = (ip: string): boolean =>
    net.isIPv4(ip) ? ip.startsWith('127.') : ip === '::1' || ip.startsWith('::ffff:127.');
  if (net.isIP(host) !== 0) return loopback(host);
  try {
    const all = await lookup(host);
    return all.length > 0 && all.every(loopback);
  } catch {
    return false;
  }
}

/** Every address a host name resolves to (the system resolver). */
async function systemLookup(host: string): Promise<string[]> {
  return (await dns.promises.lookup(host, { all: true })).map((a) => a.address);
}

/**
 * The policy of a listener at `address`: local → open without tokens, token-checked with a token
 * file; anywhere else → refused unless it has TLS and a token file (then tokens are required).
 */
export async function listenerPolicy(
  address: string,
  opts: { tokens: readonly AccessToken[] | undefined; tls: boolean; service: string },
): Promise<AccessPolicy> {
  if (await isLocalAddress(address))
    return opts.tokens === undefined ? AccessPolicy.open() : new AccessPolicy(opts.tokens, true);
  if (!opts.tls || opts.tokens === undefined)
    throw new Error(
      `${opts.service} refuses to serve on ${address} without TLS and a token file: listen on loopback or a Unix socket, or set both`,
    );
  return new AccessPolicy(opts.tokens, true);
}

/** A service listener's access, from its token file, and how to settle it once bound. */
export interface ServiceListenerAccess {
  listener: ListenerAccess;
  /** The tokens of the token file; undefined without one. */
  tokens: AccessToken[] | undefined;
  /** Sets the policy for the bound `address` ({@link listenerPolicy}; throws when refused). */
  settle(address: string): Promise<void>;
}

/**
 * The access of a service's listener. With a token file (`tokenFile` not empty) tokens are required
 * from the start; without one the listener is open until `settle(address)` sets the policy for the
 * bound address (a non-local address without TLS and tokens is refused there; `perseus serve`
 * refuses it before binding).
 */
export function serviceListenerAccess(
  tokenFile: string,
  opts: { tls: boolean; service: string },
): ServiceListenerAccess {
  const tokens = tokenFile === '' ? undefined : loadAccessTokens(tokenFile);
  const listener = new ListenerAccess(
    tokens === undefined ? AccessPolicy.open() : new AccessPolicy(tokens, true),
  );
  return {
    listener,
    tokens,
    async settle(address: string): Promise<void> {
      listener.current = await listenerPolicy(address, { tokens, ...opts });
    },
  };
}
