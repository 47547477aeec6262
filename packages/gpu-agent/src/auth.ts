import type * as grpc from '@grpc/grpc-js';
import type { AccessScope, AccessToken } from '@perseus/service-kit';
import {
  AccessPolicy,
  PermissionDeniedError,
  loadAccessTokens,
  parseAccessTokens,
  parseUnixPeer,
} from '@perseus/service-kit';
import type { Caller } from './audit';

/**
 * `read`: ListDevices, ReadEnergy. `control`: also OpenSession, SetClocks, ResetClocks. `admin`:
 * AdminReset (any device, whoever holds it) and read — never granted by the socket's group alone.
 */
export type Scope = 'read' | 'control' | 'admin';

/** The scopes an agent token file may name (`report` is accepted for files shared with the services). */
const AGENT_SCOPES: readonly AccessScope[] = ['read', 'report', 'control', 'admin'];

/** A token of the agent's token file (service-kit's format; `control` also grants `read`). */
export type Token = AccessToken;

/**
 * On the agent a `control` token may also read (it opens sessions, which describe the device), and
 * so may an `admin` token (its CLI lists what it resets). Neither implies the other.
 */
function withAgentScopes(tokens: AccessToken[]): Token[] {
  return tokens.map((t) =>
    (t.scopes.has('control') || t.scopes.has('admin')) && !t.scopes.has('read')
      ? { ...t, scopes: new Set([...t.scopes, 'read' as const]) }
      : t,
  );
}

/**
 * Parses a token file: service-kit's format, one `<name> <scope>[,<scope>] <secret>` per line with
 * `read`, `control` or `admin` as the agent's scopes, `#` comments, secrets of at least 16 characters. Throws
 * naming the line.
 */
export function parseTokenFile(text: string, source = 'token file'): Token[] {
  return withAgentScopes(parseAccessTokens(text, source, AGENT_SCOPES));
}

/** Reads a token file; refuses one that group or others can read (service-kit's rule, like ssh). */
export function loadTokenFile(path: string): Token[] {
  return withAgentScopes(loadAccessTokens(path, AGENT_SCOPES));
}

/**
 * Decides who a call is and whether it may do what it asks, for one listener: service-kit's
 * {@link AccessPolicy} (bearer tokens, scopes), plus the transport peer. On the Unix socket the
 * socket's filesystem permissions (mode 0660 + group) are the gate, so no token is required; on
 * TCP every call must present `authorization: Bearer <secret>` whose token has the scope — unless
 * the listener was explicitly allowed to run without tokens (loopback with the simulated backend,
 * or an operator's override). A presented token is always checked, even where none is required.
 *
 * On the Unix socket the caller also carries the peer's pid and uid (SO_PEERCRED, read when the
 * server accepted the connection), which the audit line logs and a lease is bound to.
 *
 * `admin` is never anonymous: it needs a token with the `admin` scope or, on the Unix socket only
 * (`adminUids` set), a peer whose kernel-reported uid is one of `adminUids` (root and the agent's
 * own uid by default: the socket's group lets trainers in, not reset each other's GPUs).
 */
export class Authorizer {
  private readonly policy: AccessPolicy;

  constructor(
    tokens: readonly Token[],
    private readonly opts: {
      requireToken: boolean;
      anonymousIdentity: string;
      adminUids?: ReadonlySet<number>;
    },
  ) {
    this.policy = new AccessPolicy(tokens, opts.requireToken);
  }

  /** Checks one call; returns the caller for the audit log or throws UNAUTHENTICATED / PERMISSION_DENIED. */
  check(call: { getPeer(): string; metadata: grpc.Metadata }, need: Scope): Caller {
    const peer = safePeer(call);
    const who = this.policy.identify(call.metadata);
    if (who.token === undefined) {
      const anonymous = caller(peer, this.opts.anonymousIdentity);
      if (need === 'admin') return this.adminByUid(anonymous);
      return anonymous;
    }
    if (!who.token.scopes.has(need)) {
      throw new PermissionDeniedError(
        `token ${JSON.stringify(who.token.name)} has scope ${[...who.token.scopes].join(',')}; this call needs ${need}`,
      );
    }
    return caller(peer, who.identity);
  }

  /** An anonymous admin call: allowed only from an admin uid on the Unix socket (SO_PEERCRED). */
  private adminByUid(c: Caller): Caller {
    const uids = this.opts.adminUids;
    if (uids !== undefined && c.uid !== undefined && uids.has(c.uid))
      return { ...c, identity: `unix-uid:${c.uid}` };
    const from = c.uid !== undefined ? `uid ${c.uid}` : `${this.opts.anonymousIdentity} ${c.peer}`;
    const how =
      uids === undefined || uids.size === 0
        ? 'a token with scope admin'
        : `uid ${[...uids].join(' or ')} on the agent's Unix socket, or a token with scope admin`;
    throw new PermissionDeniedError(
      `this call needs the agent's admin credential (${how}); it came from ${from}`,
    );
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
