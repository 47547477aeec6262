import * as fs from 'node:fs';
import type { Logger } from '@perseus/service-kit';

/** Who asked for a control action, as far as the transport can tell. */
export interface Caller {
  /**
   * The transport connection: "ip:port" for TCP; for the Unix socket the kernel's view of the
   * peer, `unix-peer:conn=…,pid=…,uid=…,gid=…` (SO_PEERCRED). A lease is bound to it.
   */
  peer: string;
  /** Authenticated identity: the token's name, or "unix-socket" (filesystem permissions gate the socket). */
  identity: string;
  /** Peer process and user on the Unix socket (SO_PEERCRED); absent on TCP. */
  pid?: number;
  uid?: number;
}

export interface AuditEntry {
  who: Caller & { jobId?: string; rank?: number };
  device: number | 'all';
  /** e.g. lease.open, lease.deny, lease.release, clocks.set, clocks.reset, reset.startup, reset.shutdown. */
  action: string;
  /** The value asked for (MHz, reason), if any. */
  value?: string | number;
  /** "ok" or the error. */
  result: string;
}

/**
 * One line per control action (who, device, what, result): to the service log with `audit: true`,
 * and appended to a dedicated file when configured. Per-instruction clock changes inside a session
 * are not audited one by one (hundreds per second); the session's close line carries their count.
 */
export class AuditLog {
  constructor(
    private readonly logger: Logger,
    private readonly filePath?: string,
  ) {
    if (filePath) fs.appendFileSync(filePath, '', { mode: 0o640 });
  }

  record(entry: AuditEntry): void {
    this.logger.info({ audit: true, ...entry }, 'audit');
    if (this.filePath) {
      try {
        fs.appendFileSync(
          this.filePath,
          `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`,
        );
      } catch (err) {
        this.logger.error({ err, path: this.filePath }, 'audit file write failed');
      }
    }
  }
}
