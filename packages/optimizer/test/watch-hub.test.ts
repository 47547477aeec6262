import { EventEmitter } from 'node:events';
import type { EncodedSchedule } from '../src/watch-hub';
import { WatchHub } from '../src/watch-hub';

/** A stand-in for a grpc-js server stream whose buffer fills after `capacity` writes. */
class FakeStream extends EventEmitter {
  written: number[] = [];
  constructor(private capacity: number) {
    super();
  }
  write(payload: Buffer): boolean {
    this.written.push(payload.readUInt32LE(0));
    return this.written.length < this.capacity;
  }
  end(): void {
    this.emit('close');
  }
  drain(capacity: number): void {
    this.capacity = this.written.length + capacity;
    this.emit('drain');
  }
}

const sched = (version: number): EncodedSchedule => {
  const payload = Buffer.alloc(4);
  payload.writeUInt32LE(version, 0);
  return { version, payload };
};

test('a slow watcher gets the newest schedule when it drains, not a backlog; a fast one gets each', () => {
  const hub = new WatchHub();
  const slow = new FakeStream(1); // full after the first write
  const fast = new FakeStream(1000);
  hub.add('j', 0, slow as never, sched(1));
  hub.add('j', 1, fast as never, sched(1));
  for (let v = 2; v <= 50; v++) hub.publish('j', () => sched(v));
  expect(fast.written).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  expect(slow.written).toEqual([1]);
  slow.drain(1);
  expect(slow.written).toEqual([1, 50]);
  hub.publish('j', () => sched(51));
  expect(slow.written).toEqual([1, 50]); // still blocked: 51 waits in the one-slot mailbox
  slow.drain(10);
  expect(slow.written).toEqual([1, 50, 51]);
  expect(hub.watcherCount('j')).toBe(2);
  slow.emit('cancelled');
  expect(hub.watcherCount('j')).toBe(1);
  hub.closeAll();
  expect(hub.watcherCount()).toBe(0);
});

test('an older version is never written after a newer one', () => {
  const hub = new WatchHub();
  const s = new FakeStream(100);
  hub.add('j', 0, s as never, sched(5));
  hub.publishRank('j', 0, sched(4));
  hub.publishRank('j', 0, sched(6));
  expect(s.written).toEqual([5, 6]);
});
