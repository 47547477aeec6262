import { randomBytes, timingSafeEqual } from 'node:crypto';
import { FailedPreconditionError, PermissionDeniedError } from '@perseus/service-kit';
import type { AuditEntry, AuditLog, Caller } from './audit';
import type { AgentStats } from './agent';
import type { DeviceSlot } from './device-slot';
import type { Session } from './session';
import type { StateFile } from './state-file';
import type { OpenSessionValue, RankIdentityValue } from './validate';

/**
 * A device lease. Its id is a bearer secret handed only to the session that opened it; it is never
 * written to disk (the state file is readable by trainers) and is accepted only from the
 * connection that opened the session (on the Unix socket: the same peer process, SO_PEERCRED).
 */
export interface Lease {
  leaseId: string;
  jobId: string;
  rank: RankIdentityValue;
  /** Pipeline GPUs N of the job (0 = not given): a simulated device's virtual stages. */
  numStages: number;
  ttlS: number;
  expiresAtUnixMs: number;
  session: Session | undefined;
  /** Who opened it; `caller.peer` is the connection the lease is bound to. */
  caller: Caller;
}

export interface LeaseTtl {
  /** Granted when the client asks for 0, seconds. */
  defaultS: number;
  /** Longest granted, seconds (requests above are capped). */
  maxS: number;
}

/** "job "x" rank 3 (pp 1, dp 0, tp 0)": the holder as denial messages and the audit name it. */
export function describeHolder(l: Lease, detail = true): string {
  const base = `job ${JSON.stringify(l.jobId)} rank ${l.rank.rank}`;
  return detail ? `${base} (pp ${l.rank.ppRank}, dp ${l.rank.dpRank}, tp ${l.rank.tpRank})` : base;
}

/** The caller of an audit line with the job/rank of the lease it acts on. */
export function leaseCaller(caller: Caller, lease: Lease | undefined): AuditEntry['who'] {
  return { ...caller, jobId: lease?.jobId, rank: lease?.rank.rank };
}

/**
 * Who holds which device: grants a lease (write-ahead dirty marker on disk before anything is
 * changed on the device), refuses a held device naming the holder, and checks that a lease id
 * presented by a unary call is the holder's, from the holder's connection.
 */
export class LeaseTable {
  constructor(
    private readonly stateFile: StateFile,
    private readonly audit: AuditLog,
    private readonly stats: Pick<AgentStats, 'sessionsDenied'>,
    private readonly ttl: LeaseTtl,
  ) {}

  /** Grants `open` on `s` to `caller`, or throws FAILED_PRECONDITION naming the holder. */
  claim(s: DeviceSlot, open: OpenSessionValue, caller: Caller): Lease {
    const who = { ...caller, jobId: open.jobId, rank: open.rank.rank };
    const held = s.lease;
    if (held) {
      this.stats.sessionsDenied++;
      const holder = describeHolder(held);
      this.audit.record({
        who,
        device: s.info.index,
        action: 'lease.deny',
        result: `held by ${holder}`,
      });
      throw new FailedPreconditionError(
        `device ${s.info.index} is leased by ${holder} until ${new Date(held.expiresAtUnixMs).toISOString()} unless renewed`,
      );
    }
    const ttlS = Math.min(open.leaseTtlS === 0 ? this.ttl.defaultS : open.leaseTtlS, this.ttl.maxS);
    const lease: Lease = {
      // 128 random bits, URL-safe: unguessable, and the same alphabet clients already accept.
      leaseId: randomBytes(16).toString('hex'),
      jobId: open.jobId,
      rank: open.rank,
      numStages: open.numStages,
      ttlS,
      expiresAtUnixMs: Date.now() + ttlS * 1000,
      session: undefined,
      caller,
    };
    // Write-ahead: the device is marked dirty on disk before anything is changed on it. The lease
    // id is not written: whoever can read the file must not be able to act as the holder.
    this.stateFile.update(
      (st) => {
        const d = st.devices[String(s.info.index)] ?? { dirty: false };
        d.dirty = true;
        d.lease = { jobId: lease.jobId, rank: lease.rank.rank };
        st.devices[String(s.info.index)] = d;
      },
      { sync: true },
    );
    s.lease = lease;
    return lease;
  }

  /** Drops `lease` from `s` if it still holds it; true when it did. */
  release(s: DeviceSlot, lease: Lease): boolean {
    if (s.lease !== lease) return false;
    s.lease = undefined;
    return true;
  }

  /**
   * The lease of `s` when `leaseId` is its id and `caller` is on the connection that opened it;
   * else FAILED_PRECONDITION (wrong or no lease) or PERMISSION_DENIED (right id, other connection),
   * audited as a denial.
   */
  authorize(s: DeviceSlot, leaseId: string, caller: Caller, action: string): Lease {
    const h = s.lease;
    const device = s.info.index;
    if (!h || !sameSecret(h.leaseId, leaseId)) {
      const result = h ? `held by ${describeHolder(h, false)}` : 'not leased';
      this.audit.record({ who: caller, device, action, result: `denied: ${result}` });
      throw new FailedPreconditionError(
        h
          ? `lease_id does not hold device ${device}: it is leased by ${describeHolder(h, false)}`
          : `lease_id does not hold device ${device}: the device is not leased (open a session first)`,
      );
    }
    if (h.caller.peer !== caller.peer) {
      this.audit.record({
        who: leaseCaller(caller, h),
        device,
        action,
        result: `denied: lease bound to ${h.caller.peer}, presented from ${caller.peer}`,
      });
      throw new PermissionDeniedError(
        `the lease of device ${device} is bound to the connection of its session (${peerText(h.caller)}); this call came from ${peerText(caller)}`,
      );
    }
    return h;
  }
}

function peerText(c: Caller): string {
  return c.pid !== undefined ? `pid ${c.pid}, uid ${c.uid ?? '?'}` : c.peer;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
