import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The agent's on-disk state: which devices it may have moved off their defaults ("dirty", written
 * BEFORE a change is applied), and for the simulated backend the simulated hardware itself. A
 * restarted agent reads it to reset what a crashed one left behind (issue 4, item 2).
 */

/** Simulated hardware registers of one device (what a real GPU would keep across an agent crash). */
export interface SimulatedDeviceState {
  lockedSmClockMhz: number;
  memoryClockLocked: boolean;
  powerLimitW: number;
  energyMj: number;
  savedAtUnixMs: number;
}

export interface PersistedDevice {
  /** The agent may have changed this device from its defaults; reset it at startup. */
  dirty: boolean;
  /**
   * Holder of the lease when last written (informational, for the startup log). Never the lease id:
   * the file is readable by the socket's group, and a lease id is a bearer secret.
   */
  lease?: { jobId: string; rank: number };
  sim?: SimulatedDeviceState;
}

export interface PersistedState {
  version: 1;
  /** Pid of the agent that wrote the file last. */
  pid: number;
  updatedAtUnixMs: number;
  /** True only after a shutdown that reset every device. */
  cleanShutdown: boolean;
  devices: Record<string, PersistedDevice>;
}

function emptyState(): PersistedState {
  return {
    version: 1,
    pid: process.pid,
    updatedAtUnixMs: Date.now(),
    cleanShutdown: true,
    devices: {},
  };
}

/**
 * Atomic JSON state file (write to a temp file, fsync, rename). Writes requested with `sync` hit the
 * disk before the call returns (dirty markers: write-ahead of a clock change); others are coalesced
 * within `debounceMs`. A corrupt or unreadable file is reported via {@link loadError} and treated
 * as "everything may be dirty" by the agent.
 */
export class StateFile {
  private state: PersistedState;
  /** What the file held when opened (before this process changed anything). */
  readonly previous: PersistedState | undefined;
  readonly loadError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly snapshotters: Array<(s: PersistedState) => void> = [];

  constructor(
    readonly filePath: string,
    private readonly debounceMs = 50,
  ) {
    let prev: PersistedState | undefined;
    let err: string | undefined;
    try {
      const raw = fs.readFileSync(filePath, 'utf8');
      const parsed = JSON.parse(raw) as PersistedState;
      if (parsed.version !== 1 || typeof parsed.devices !== 'object' || parsed.devices === null)
        throw new Error('unknown format');
      prev = parsed;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') err = e instanceof Error ? e.message : String(e);
    }
    this.previous = prev;
    this.loadError = err;
    this.state = prev ? (JSON.parse(JSON.stringify(prev)) as PersistedState) : emptyState();
    this.state.pid = process.pid;
    this.state.cleanShutdown = false;
    fs.mkdirSync(path.dirname(filePath), { recursive: true, mode: 0o750 });
  }

  /** Registers a function that refreshes part of the state right before each write. */
  addSnapshotter(fn: (s: PersistedState) => void): void {
    this.snapshotters.push(fn);
  }

  device(index: number): PersistedDevice {
    const key = String(index);
    const d = this.state.devices[key] ?? { dirty: false };
    this.state.devices[key] = d;
    return d;
  }

  /** Changes the state; `sync` writes before returning, else within the debounce window. */
  update(mutate: (s: PersistedState) => void, opts: { sync?: boolean } = {}): void {
    mutate(this.state);
    if (opts.sync) this.flush();
    else this.schedule();
  }

  /**
   * Writes now (atomic rename). `durable` (default) fsyncs first: dirty markers must be on disk
   * before a clock changes. Debounced writes skip the fsync, which would stall the event loop for
   * milliseconds at every clock change of a busy session.
   */
  flush(durable = true): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    for (const snap of this.snapshotters) snap(this.state);
    this.state.updatedAtUnixMs = Date.now();
    const tmp = `${this.filePath}.${process.pid}.tmp`;
    const fd = fs.openSync(tmp, 'w', 0o640);
    try {
      fs.writeSync(fd, JSON.stringify(this.state, null, 1));
      if (durable) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.filePath);
  }

  /**
   * Gives the file back as it was found, for a start that failed before changing any device: pending
   * writes are dropped and the previous content restored (or the file removed if there was none).
   */
  abandon(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.previous) {
      this.state = this.previous;
      this.flush();
    } else {
      fs.rmSync(this.filePath, { force: true });
    }
  }

  /** Marks a clean shutdown (every device reset) and writes. */
  markClean(): void {
    this.state.cleanShutdown = true;
    this.flush();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      try {
        this.flush(false);
      } catch {
        // the next write retries; a lost debounced write only loses simulated energy precision
      }
    }, this.debounceMs);
    this.timer.unref();
  }
}

/** Reads a state file without taking ownership (tests, `perseus status`). */
export function readStateFile(filePath: string): PersistedState | undefined {
  try {
    return JSON.parse(fs.readFileSync(filePath, 'utf8')) as PersistedState;
  } catch {
    return undefined;
  }
}
