// Transport reference for bench_agent.py: the same paced Begin/End stream from a Node (grpc-js)
// client, to separate the Python gRPC library's share of event → applied latency from the agent's.
//   node --import tsx tools/bench/agent/node-sender.ts unix:/path/agent.sock [pairs] [work_us]
import * as grpc from '@grpc/grpc-js';
import { perseusGrpc } from '@perseus/proto';

const [address, pairsArg, workArg] = process.argv.slice(2);
const pairs = Number(pairsArg ?? 2000);
const workUs = Number(workArg ?? 2000);
const client = new (perseusGrpc().perseus.agent.v1.GpuAgent)(
  address!,
  grpc.credentials.createInsecure(),
);
const s = client.OpenSession();
const now = (): string => String(process.hrtime.bigint());
let got = 0;
const sleep = (us: number): Promise<void> => new Promise((r) => setTimeout(r, us / 1000));
s.on('data', (m: { opened?: object; measurement?: object }) => {
  if (m.opened) {
    void (async () => {
      for (let i = 1; i <= pairs; i++) {
        s.write({
          begin: {
            seq: i,
            instruction: 'INSTRUCTION_KIND_FORWARD',
            frequency_mhz: i % 2 ? 1410 : 1005,
            t_ns: now(),
          },
        });
        await sleep(workUs);
        s.write({ end: { seq: i, t_ns: now() } });
      }
    })();
  }
  if (m.measurement && ++got === pairs) {
    s.end();
    client.close();
    process.stdout.write(`${JSON.stringify({ pairs: got })}\n`);
  }
});
s.on('error', (e) => {
  console.error(e.message);
  process.exit(1);
});
s.write({ open: { job_id: 'node-bench', rank: {}, device_index: 0, lease_ttl_s: 60 } });
