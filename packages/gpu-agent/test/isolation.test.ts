import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { perseusGrpc } from '@perseus/proto';
import { createLogger, decodeFieldViolations } from '@perseus/service-kit';
import { createAgentModule, readStateFile } from '../src';
import type { SimulatedBackend } from '../src';
import type { AgentClient, RunningAgent } from './helpers';
import { SessionClient, call, expectGrpcError, nowNs, startAgent, tempDir, until } from './helpers';

/**
 * Issue 13, isolation between jobs and values that make no sense, through the real agent on a Unix
 * socket: a lease id read from disk or stolen cannot act on a GPU, two agents cannot share a state
 * file, and out-of-range numbers are INVALID_ARGUMENT with a field violation.
 */

let agent: RunningAgent | undefined;
const extraClients: AgentClient[] = [];

afterEach(async () => {
  for (const c of extraClients.splice(0)) c.close();
  await agent?.stop();
  agent = undefined;
});

/** A client on its own connection (as another process would be): no shared subchannel. */
function otherConnection(address: string): AgentClient {
  const c = new (perseusGrpc().perseus.agent.v1.GpuAgent)(
    address,
    grpc.credentials.createInsecure(),
    { 'grpc.use_local_subchannel_pool': 1 },
  );
  extraClients.push(c);
  return c;
}

function auditLines(file: string): Array<Record<string, unknown>> {
  return fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('the state file (readable by trainers) holds no lease id', async () => {
  agent = await startAgent();
  const s = new SessionClient(agent.client);
  s.open('victim', 0);
  const opened = await s.opened();
  expect(opened.lease_id.length).toBeGreaterThanOrEqual(32);
  const raw = fs.readFileSync(path.join(agent.dir, 'state.json'), 'utf8');
  expect(raw).not.toContain(opened.lease_id);
  expect(readStateFile(path.join(agent.dir, 'state.json'))!.devices['0']).toMatchObject({
    dirty: true,
    lease: { jobId: 'victim', rank: 3 },
  });
  s.stream.end();
  await s.done;
});

test("another connection holding the victim's lease id cannot change its GPU; audit names pid and uid", async () => {
  const dir = tempDir();
  const auditLog = path.join(dir, 'audit.log');
  agent = await startAgent({ auditLogFile: auditLog }, dir);
  const victim = new SessionClient(agent.client);
  victim.open('victim', 1);
  const { lease_id } = await victim.opened();

  const attacker = otherConnection(agent.address);
  const err = await expectGrpcError(
    call(attacker, 'SetClocks', { lease_id, device_index: 1, sm_clock_mhz: 210 }),
  );
  expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
  expect(err.details).toMatch(/bound to the connection of its session \(pid \d+, uid \d+\)/);
  expect(
    (await expectGrpcError(call(attacker, 'ResetClocks', { lease_id, device_index: 1 }))).code,
  ).toBe(grpc.status.PERMISSION_DENIED);
  expect((await call(attacker, 'ListDevices', {})).devices[1]!.locked_sm_clock_mhz).toBe(0);

  // The holder's own connection still controls it.
  const ok = await call(agent.client, 'SetClocks', {
    lease_id,
    device_index: 1,
    sm_clock_mhz: 1005,
  });
  expect(ok.applied_sm_clock_mhz).toBe(1005);

  const lines = auditLines(auditLog);
  const open = lines.find((l) => l['action'] === 'lease.open')!;
  const who = open['who'] as Record<string, unknown>;
  expect(who['pid']).toBe(process.pid);
  expect(who['uid']).toBe(process.getuid!());
  expect(String(who['peer'])).toMatch(/^unix-peer:conn=unix#\d+,pid=\d+,uid=\d+,gid=\d+$/);
  const denied = lines.filter(
    (l) => l['action'] === 'clocks.set' && String(l['result']).startsWith('denied'),
  );
  expect(denied).toHaveLength(1);
  expect(lines.filter((l) => l['action'] === 'clocks.set' && l['result'] === 'ok')).toHaveLength(1);
  victim.stream.end();
  await victim.done;
});

test('a second agent on the same state file refuses to start and leaves the live one untouched', async () => {
  const dir = tempDir();
  agent = await startAgent({}, dir);
  const s = new SessionClient(agent.client);
  s.open('live-job', 1);
  await s.opened();
  s.send({
    begin: {
      seq: 1,
      instruction: 'INSTRUCTION_KIND_FORWARD',
      frequency_mhz: 1305,
      t_ns: nowNs(),
    },
  });
  await until(
    async () =>
      (await call(agent!.client, 'ListDevices', {})).devices[1]!.locked_sm_clock_mhz === 1305,
  );

  await expect(
    createAgentModule({
      logger: createLogger('second', 'silent'),
      backend: 'simulated',
      simulatedDevices: 2,
      stateFile: path.join(dir, 'state.json'),
      listenAddress: agent.address,
      env: {},
    }),
  ).rejects.toThrow(/another agent \(pid \d+\) holds .*state\.json\.lock: refusing to start/);

  // The live agent's socket, lease and clock are as they were, and its session still measures.
  expect(fs.statSync(path.join(dir, 'a.sock')).isSocket()).toBe(true);
  const dev = (await call(agent.client, 'ListDevices', {})).devices[1]!;
  expect(dev.locked_sm_clock_mhz).toBe(1305);
  expect(dev.lease?.job_id).toBe('live-job');
  s.send({ end: { seq: 1, t_ns: nowNs() } });
  expect((await s.measurement(1)).frequency_applied_mhz).toBe(1305);
  s.stream.end();
  await s.done;
});

test('lease TTL 5e-324 is refused with a field violation, nothing leased', async () => {
  agent = await startAgent();
  const s = new SessionClient(agent.client);
  s.open('tiny-ttl', 0, { lease_ttl_s: 5e-324 });
  const st = await s.done;
  expect(st.code).toBe(grpc.status.INVALID_ARGUMENT);
  expect(decodeFieldViolations(st.metadata)).toEqual([
    {
      field: 'open.lease_ttl_s',
      description: 'must be 0 (agent default) or 0.1-86400 s, got 5e-324',
    },
  ]);
  expect((await call(agent.client, 'ListDevices', {})).devices[0]!.lease).toBeNull();
});

test('End.t_ns = 2^63-1 and a future Begin are refused in-stream; no 9.2e9 s measurement', async () => {
  agent = await startAgent();
  const s = new SessionClient(agent.client);
  s.open('clock-abuse', 0);
  await s.opened();
  const begin = (seq: number, t: string) =>
    s.send({
      begin: { seq, instruction: 'INSTRUCTION_KIND_FORWARD', frequency_mhz: 1005, t_ns: t },
    });
  begin(1, nowNs());
  s.send({ end: { seq: 1, t_ns: '9223372036854775807' } });
  const e1 = await s.error(1);
  expect(e1.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
  expect(e1.error?.violations).toEqual([
    {
      field: 'end.t_ns',
      description: 'must be 1 .. 2^62-1 ns (client CLOCK_MONOTONIC), got 9223372036854775807',
    },
  ]);
  // In range but an hour ahead of the agent's (shared) clock: a timestamp from the future.
  begin(2, String(process.hrtime.bigint() + 3_600_000_000_000n));
  const e2 = await s.error(2);
  expect(e2.error?.violations?.[0]?.field).toBe('begin.t_ns');
  expect(e2.error?.violations?.[0]?.description).toMatch(/cannot be in the future/);
  // The session stays usable: Begin 1 still ends normally.
  s.send({ end: { seq: 1, t_ns: nowNs() } });
  const m = await s.measurement(1);
  expect(m.time_s).toBeLessThan(5);
  expect(s.messages.filter((x) => x.measurement)).toHaveLength(1);
  s.stream.end();
  await s.done;
});

test('plain TCP is refused when the listen name resolves off loopback, whatever its text', async () => {
  const dir = tempDir();
  const start = (listenAddress: string) =>
    createAgentModule({
      logger: createLogger('loopback', 'silent'),
      backend: 'simulated',
      simulatedDevices: 1,
      stateFile: path.join(dir, 'state.json'),
      listenAddress,
      env: {},
      lookup: async (host) => (host === '127.evil.test' ? ['10.9.9.9'] : ['127.0.0.1', '::1']),
    });
  await expect(start('127.evil.test:0')).rejects.toThrow(
    'the agent serves plain TCP only on loopback, got 127.evil.test:0 (not every address it resolves to is loopback)',
  );
  // The refusal released the state-file lock and left no dirty state: a loopback name starts.
  const ok = await start('localhost:0');
  expect(ok.core.devices()).toHaveLength(1);
  await ok.close();
  expect(readStateFile(path.join(dir, 'state.json'))!.cleanShutdown).toBe(true);
});

test('a token file others can read is refused with a clear message', async () => {
  const dir = tempDir();
  const tokenFile = path.join(dir, 'tokens');
  fs.writeFileSync(tokenFile, 'trainer control 0123456789abcdef0123\n', { mode: 0o644 });
  fs.chmodSync(tokenFile, 0o644);
  const start = () =>
    createAgentModule({
      logger: createLogger('tokens', 'silent'),
      backend: 'simulated',
      simulatedDevices: 1,
      stateFile: path.join(dir, 'state.json'),
      listenAddress: `unix:${path.join(dir, 'a.sock')}`,
      tokenFile,
      env: {},
    });
  await expect(start()).rejects.toThrow(
    `token file ${tokenFile} is readable by group or others (mode 0644); chmod 600 it`,
  );
  fs.chmodSync(tokenFile, 0o600);
  const ok = await start();
  await ok.close();
});

test('a full device queue is RESOURCE_EXHAUSTED (in-stream and unary), not INTERNAL', async () => {
  agent = await startAgent({ core: { driverQueueMax: 3 } });
  const s = new SessionClient(agent.client);
  s.open('flood', 0);
  await s.opened();
  // The driver is held until the checks are done: the queue stays full however fast the machine.
  const release = (agent.module.core.backend as SimulatedBackend).holdDriverCalls();
  try {
    for (let seq = 1; seq <= 8; seq++) {
      s.send({
        begin: {
          seq,
          instruction: 'INSTRUCTION_KIND_FORWARD',
          frequency_mhz: seq % 2 ? 1005 : 1305,
          t_ns: nowNs(),
        },
      });
    }
    const refused = await s.waitFor((m) => m.find((x) => x.error)?.error ?? undefined);
    expect(refused.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused.error?.message).toMatch(/device 0: driver queue full \(3 operations pending\)/);
    expect(s.messages.some((x) => x.error?.error?.code === grpc.status.INTERNAL)).toBe(false);
    const err = await expectGrpcError(call(agent.client, 'ReadEnergy', { device_index: 0 }));
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  } finally {
    release();
  }
  // The flood cannot block the reset: the lease ends and the device is back at default clocks.
  s.stream.end();
  expect((await s.done).code).toBe(grpc.status.OK);
  const dev = (await call(agent.client, 'ListDevices', {})).devices[0]!;
  expect(dev.lease).toBeNull();
  expect(dev.locked_sm_clock_mhz).toBe(0);
});
