import type * as grpc from '@grpc/grpc-js';

/** A schedule already encoded for the wire (see the WatchSchedule serializer in service.ts). */
export interface EncodedSchedule {
  version: number;
  payload: Buffer;
}

type ScheduleCall = grpc.ServerWritableStream<unknown, Buffer>;

/** One open WatchSchedule stream. */
interface Watcher {
  jobId: string;
  rank: number;
  call: ScheduleCall;
  /** The stream's buffer is full: wait for 'drain' before writing again. */
  blocked: boolean;
  /** Newest schedule not yet written (only the newest is kept: no backlog). */
  pending: EncodedSchedule | null;
  lastVersion: number;
}

/**
 * Fan-out of schedules to WatchSchedule streams, coalescing per watcher: while a watcher's stream
 * is backed up (grpc-js `write` returned false) later schedules replace each other in a one-slot
 * mailbox, and only the newest is written when the stream drains. A slow client therefore gets the
 * current schedule, never a backlog, and cannot make the server buffer without bound.
 */
export class WatchHub {
  private readonly byJob = new Map<string, Set<Watcher>>();

  /** Registers a stream and writes `initial` to it at once. */
  add(jobId: string, rank: number, call: ScheduleCall, initial: EncodedSchedule): void {
    const w: Watcher = { jobId, rank, call, blocked: false, pending: null, lastVersion: 0 };
    let set = this.byJob.get(jobId);
    if (set === undefined) this.byJob.set(jobId, (set = new Set()));
    set.add(w);
    const remove = (): void => {
      const s = this.byJob.get(jobId);
      s?.delete(w);
      if (s?.size === 0) this.byJob.delete(jobId);
    };
    call.on('cancelled', remove);
    call.on('close', remove);
    call.on('error', remove);
    call.on('drain', () => {
      w.blocked = false;
      const p = w.pending;
      w.pending = null;
      if (p !== null) this.send(w, p);
    });
    this.send(w, initial);
  }

  private send(w: Watcher, s: EncodedSchedule): void {
    const version = s.version;
    if (version < w.lastVersion) return;
    if (w.blocked) {
      w.pending = s;
      return;
    }
    w.lastVersion = version;
    if (!w.call.write(s.payload)) w.blocked = true;
  }

  /** Sends each watcher of `jobId` its schedule (computed lazily per rank). */
  publish(jobId: string, scheduleFor: (rank: number) => EncodedSchedule): void {
    const set = this.byJob.get(jobId);
    if (set === undefined) return;
    for (const w of set) this.send(w, scheduleFor(w.rank));
  }

  /** Sends one rank's watchers their schedule. */
  publishRank(jobId: string, rank: number, schedule: EncodedSchedule): void {
    const set = this.byJob.get(jobId);
    if (set === undefined) return;
    for (const w of set) if (w.rank === rank) this.send(w, schedule);
  }

  /** Ranks of `jobId` with at least one open stream. */
  watchingRanks(jobId: string): Set<number> {
    const out = new Set<number>();
    for (const w of this.byJob.get(jobId) ?? []) out.add(w.rank);
    return out;
  }

  /** Ends every stream of one job (the job was deleted). */
  closeJob(jobId: string): void {
    const set = this.byJob.get(jobId);
    this.byJob.delete(jobId);
    for (const w of set ?? []) w.call.end();
  }

  watcherCount(jobId?: string): number {
    if (jobId !== undefined) return this.byJob.get(jobId)?.size ?? 0;
    let n = 0;
    for (const s of this.byJob.values()) n += s.size;
    return n;
  }

  /** Ends every stream (server shutdown): clients reconnect and get the current version. */
  closeAll(): void {
    for (const set of this.byJob.values()) for (const w of set) w.call.end();
    this.byJob.clear();
  }
}
