import { ResourceExhaustedError } from '@perseus/service-kit';

/**
 * A serial queue of driver operations for one device. Stream handlers enqueue and return at once;
 * operations run one after another (driver calls on a device must not interleave: a reset must not
 * overtake the lock that preceded it), and FFI backends run each call on a libuv thread, so neither
 * the event loop nor any other device waits on a slow driver call.
 */
export class DeviceWorker {
  private tail: Promise<void> = Promise.resolve();
  private depthValue = 0;

  constructor(
    readonly index: number,
    /** Operations queued beyond this are refused (a client flooding the agent must not grow memory). */
    readonly maxDepth = 10_000,
  ) {}

  /** Operations queued or running. */
  get depth(): number {
    return this.depthValue;
  }

  /** Enqueues `op`; the returned promise settles with its result, or rejects at once when full. */
  run<T>(op: () => Promise<T> | T): Promise<T> {
    if (this.depthValue >= this.maxDepth) {
      return Promise.reject(new QueueFullError(this.index, this.maxDepth));
    }
    return this.enqueue(op);
  }

  /**
   * Enqueues `op` even when the queue is full: device resets, which no flood of client events may
   * refuse (a GPU must never stay at a lowered clock because its queue was full when a lease ended).
   */
  runAlways<T>(op: () => Promise<T> | T): Promise<T> {
    return this.enqueue(op);
  }

  private enqueue<T>(op: () => Promise<T> | T): Promise<T> {
    this.depthValue++;
    const result = this.tail.then(op);
    const done = (): void => {
      this.depthValue--;
    };
    this.tail = result.then(done, done);
    return result;
  }
}

/** The device's driver queue is full: RESOURCE_EXHAUSTED (the client should slow down). */
export class QueueFullError extends ResourceExhaustedError {
  constructor(index: number, max: number) {
    super(`device ${index}: driver queue full (${max} operations pending)`);
  }
}
