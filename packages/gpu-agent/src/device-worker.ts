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

  /** Enqueues `op`; the returned promise settles with its result. Throws when the queue is full. */
  run<T>(op: () => Promise<T> | T): Promise<T> {
    if (this.depthValue >= this.maxDepth) {
      return Promise.reject(new QueueFullError(this.index, this.maxDepth));
    }
    this.depthValue++;
    const result = this.tail.then(op);
    this.tail = result.then(
      () => {
        this.depthValue--;
      },
      () => {
        this.depthValue--;
      },
    );
    return result;
  }

  /** Resolves once everything queued so far has run. */
  idle(): Promise<void> {
    return this.tail;
  }
}

export class QueueFullError extends Error {
  constructor(index: number, max: number) {
    super(`device ${index}: driver queue full (${max} operations pending)`);
  }
}
