import * as fs from 'node:fs';
import * as path from 'node:path';
import koffi from 'koffi';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

type Flock = (fd: number, op: number) => number;
let flock: Flock | undefined;

function libcFlock(): Flock {
  if (!flock) {
    const fn = koffi.load('libc.so.6').func('int flock(int fd, int operation)');
    flock = (fd, op) => Number(fn(fd, op));
  }
  return flock;
}

/**
 * One agent per state file: an exclusive, non-blocking flock(2) on `<state file>.lock`, held for the
 * agent's lifetime. The kernel drops it when the process dies (a crashed agent never blocks the next
 * one), and a second agent started while the first lives is refused before it touches anything — it
 * would otherwise reset devices that live sessions hold and take over the live socket.
 */
export class StateLock {
  private constructor(
    readonly lockPath: string,
    private fd: number | undefined,
  ) {}

  /** Takes the lock or throws naming the holder. */
  static acquire(stateFile: string): StateLock {
    const lockPath = `${stateFile}.lock`;
    fs.mkdirSync(path.dirname(lockPath), { recursive: true, mode: 0o750 });
    const fd = fs.openSync(lockPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o640);
    if (libcFlock()(fd, LOCK_EX | LOCK_NB) !== 0) {
      let holder = '';
      try {
        holder = fs.readFileSync(lockPath, 'utf8').trim();
      } catch {
        // unreadable: say nothing about the holder
      }
      fs.closeSync(fd);
      throw new Error(
        `another agent${/^\d+$/.test(holder) ? ` (pid ${holder})` : ''} holds ${lockPath}: refusing to start on state file ${stateFile}. ` +
          'Two agents on one state file would reset GPUs that live sessions hold and take over the live socket; stop the other agent, or give this one its own --agent-state-file',
      );
    }
    fs.ftruncateSync(fd, 0);
    fs.writeSync(fd, `${process.pid}\n`, 0);
    return new StateLock(lockPath, fd);
  }

  /** Releases the lock (idempotent). */
  release(): void {
    if (this.fd === undefined) return;
    libcFlock()(this.fd, LOCK_UN);
    fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
