/**
 * Child process of the fan-out benchmark: opens WatchSchedule streams for ranks [from, to) over a
 * few HTTP/2 connections, tells the parent when every stream has `readyVersion`, then reports the
 * wall-clock arrival time of `awaitVersion` on each stream.
 *   node --import tsx watchers.ts <address> <jobId> <from> <to> <connections> <full|version>
 *
 * `full` decodes every Schedule with the generated deserializer, as a real rank would; `version`
 * reads only the version field of the bytes that arrived. A real rank decodes one message on its
 * own CPU; here one process emulates a thousand ranks on a shared core, so `version` measures the
 * delivery to the rank's process without charging the emulator's serial decode of 1,024 messages.
 */
import * as grpc from '@grpc/grpc-js';
import { perseusGrpc } from '@perseus/proto';
import type { optimizerV1 } from '@perseus/proto';
import { wallMs } from './lib';

const [address = '', jobId = '', fromText = '0', toText = '0', connText = '8', decode = 'version'] =
  process.argv.slice(2);
const from = Number(fromText);
const to = Number(toText);

/** Field 3 (version, varint) of an encoded Schedule. */
function versionOf(b: Buffer): number {
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const byte = b[i++]!;
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) return v;
      mul *= 128;
    }
  };
  while (i < b.length) {
    const tag = varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 3 && wire === 0) return varint();
    if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const len = varint();
      i += len;
    } else throw new Error(`wire type ${wire}`);
  }
  return 0;
}

const base = perseusGrpc().perseus.optimizer.v1.Optimizer.service;
const definition =
  decode === 'full'
    ? base
    : { ...base, WatchSchedule: { ...base.WatchSchedule, responseDeserialize: (b: Buffer) => b } };
const Ctor = grpc.makeGenericClientConstructor(definition as grpc.ServiceDefinition, 'Optimizer');
const clients = Array.from(
  { length: Number(connText) },
  (_, i) =>
    new Ctor(address, grpc.credentials.createInsecure(), {
      'grpc.bench_key': from * 1000 + i,
      'grpc.use_local_subchannel_pool': 1,
    }) as unknown as grpc.Client & {
      WatchSchedule(req: unknown): grpc.ClientReadableStream<optimizerV1.Schedule__Output | Buffer>;
    },
);
const latest = new Map<number, number>();
const arrivals = new Map<number, Map<number, number>>(); // version → rank → wall ms
const streams: grpc.ClientReadableStream<optimizerV1.Schedule__Output | Buffer>[] = [];
let waitingFor: { version: number; missing: number; resolve: () => void } | undefined;

const send = (m: unknown): void => {
  process.send!(m);
};

for (let r = from; r < to; r++) {
  const s = clients[r % clients.length]!.WatchSchedule({
    job_id: jobId,
    rank: r,
    known_version: '0',
  });
  s.on('data', (sch: optimizerV1.Schedule__Output | Buffer) => {
    const t = wallMs();
    const v = Buffer.isBuffer(sch) ? versionOf(sch) : Number(sch.version);
    const prev = latest.get(r) ?? 0;
    latest.set(r, v);
    let m = arrivals.get(v);
    if (m === undefined) arrivals.set(v, (m = new Map()));
    m.set(r, t);
    if (
      waitingFor !== undefined &&
      v >= waitingFor.version &&
      prev < waitingFor.version &&
      --waitingFor.missing === 0
    ) {
      const w = waitingFor;
      waitingFor = undefined;
      w.resolve();
    }
  });
  s.on('error', () => undefined);
  streams.push(s);
}

process.on(
  'message',
  (
    msg:
      | { type: 'waitAll'; version: number }
      | { type: 'arrivals'; version: number }
      | { type: 'exit' },
  ) => {
    if (msg.type === 'waitAll') {
      const done = (): void => send({ type: 'ready', version: msg.version });
      let missing = 0;
      for (let r = from; r < to; r++) if ((latest.get(r) ?? 0) < msg.version) missing++;
      if (missing === 0) done();
      else waitingFor = { version: msg.version, missing, resolve: done };
    } else if (msg.type === 'arrivals') {
      send({
        type: 'arrivals',
        version: msg.version,
        times: [...(arrivals.get(msg.version) ?? new Map()).entries()],
      });
    } else {
      for (const s of streams) s.cancel();
      for (const c of clients) c.close();
      process.exit(0);
    }
  },
);
send({ type: 'started' });
