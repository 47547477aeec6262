import { createHash, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { PermissionDeniedError, UnauthenticatedError, parseUnixPeer } from '@perseus/service-kit';
import type { Caller } from './audit';

/** `read`: ListDevices, ReadEnergy. `control`: also OpenSession, SetClocks, ResetClocks. */
export type Scope = 'read' | 'control';

export interface Token {
  name: string;
  scope: Scope;
  /** sha256 of the secret (the secret itself is not kept). */
  digest: Buffer;
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/**
 * Parses a token file: one `<name> <read|control> <secret>` per line, `#` comments. Secrets must be
 * at least 16 characters. Throws naming the line.
 */
export function parseTokenFile(text: string, source = 'token file'): Token[] {
  const out: Token[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const parts = line.split(/\s+/);
    const [name, scope, secret] = parts;
    if (parts.length !== 3 || !name || !secret || (scope !== 'read' && scope !== 'control')) {
      throw new Error(`${source}:${i + 1}: expected "<name> <read|control> <secret>"`);
    }
    if (secret.length < 16)
      throw new Error(`${source}:${i + 1}: secret of ${name} must have at least 16 characters`);
    out.push({ name, scope, digest: digest(secret) });
  });
  return out;
}

/**
 * Reads a token file. Like ssh with a private key, refuses one that other users can read or write
 * (mode bits for "other"): its secrets would grant control of the GPUs to every local user.
 */
export function loadTokenFile(path: string): Token[] {
  const mode = fs.statSync(path).mode & 0o777;
  if ((mode & 0o007) !== 0) {
    throw new Error(
      `token file ${path} is accessible by every user (mode 0${mode.toString(8)}): its secrets must not be; run "chmod o-rwx ${path}" (e.g. 0600 or 0640 root:perseus)`,
    );
  }
  return parseTokenFile(fs.readFileSync(path, 'utf8'), path);
}

/**
 * Decides who a call is and whether it may do what it asks, for one listener. On the Unix socket the
 * socket's filesystem permissions (mode 0660 + group) are the gate, so no token is required; on TCP
 * every call must present `authorization: Bearer <secret>` whose token has the scope — unless the
 * listener was explicitly allowed to run without tokens (loopback with the simulated backend, or an
 * operator's override). A presented token is always checked, even where none is required.
 *
 * On the Unix socket the caller also carries the peer's pid and uid (SO_PEERCRED, read when the
 * server accepted the connection), which the audit line logs and a lease is bound to.
 */
export class Authorizer {
  constructor(
    private readonly tokens: readonly Token[],
    private readonly opts: { requireToken: boolean; anonymousIdentity: string },
  ) {}

  /** Checks one call; returns the caller for the audit log or throws UNAUTHENTICATED / PERMISSION_DENIED. */
  check(call: { getPeer(): string; metadata: grpc.Metadata }, need: Scope): Caller {
    const peer = safePeer(call);
    const header = call.metadata.get('authorization')[0];
    const presented =
      typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header)?.[1] : undefined;
    if (presented === undefined) {
      if (this.opts.requireToken)
        throw new UnauthenticatedError('this listener requires "authorization: Bearer <token>"');
      return caller(peer, this.opts.anonymousIdentity);
    }
    const d = digest(presented);
    const token = this.tokens.find((t) => timingSafeEqual(t.digest, d));
    if (!token) throw new UnauthenticatedError('unknown token');
    if (need === 'control' && token.scope !== 'control') {
      throw new PermissionDeniedError(
        `token ${JSON.stringify(token.name)} has scope read; this call needs control`,
      );
    }
    return caller(peer, `token:${token.name}`);
  }
}

function caller(peer: string, identity: string): Caller {
  const unix = parseUnixPeer(peer);
  return unix ? { peer, identity, pid: unix.pid, uid: unix.uid } : { peer, identity };
}

function safePeer(call: { getPeer(): string }): string {
  try {
    return call.getPeer();
  } catch {
    return 'unknown';
  }
}

/** An authorizer whose policy is settled late (once the listener's bound address is known). */
export class SwitchableAuthorizer {
  constructor(public current: Authorizer) {}

  check(call: { getPeer(): string; metadata: grpc.Metadata }, need: Scope): Caller {
    return this.current.check(call, need);
  }
}
