import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { perseusGrpc } from '@perseus/proto';
import { readStateFile } from '../src';
import type { AgentClient } from './helpers';
import { SessionClient, call, nowNs, startAgent, tempDir, until } from './helpers';

/**
 * The crash cases against real processes: `bin/perseus serve agent` as a child, a trainer stand-in
 * as another child, SIGKILL for either. No mocks: what is asserted is the device state the agent
 * reports and the state file it leaves on disk.
 */

const REPO = path.resolve(__dirname, '..', '..', '..');
const PERSEUS = path.join(REPO, 'bin', 'perseus');
const children = new Set<ChildProcess>();
const clients: AgentClient[] = [];

function waitForLine(
  child: ChildProcess,
  pred: (msg: Record<string, unknown>) => boolean,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(
      () => reject(new Error(`no matching line within ${timeoutMs} ms: ${buf.slice(-500)}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const msg = JSON.parse(line) as Record<string, unknown>;
          if (pred(msg)) {
            clearTimeout(timer);
            child.stdout?.off('data', onData);
            resolve(msg);
            return;
          }
        } catch {
          // not JSON
        }
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`process exited with ${code} before the expected line`));
    });
  });
}

async function startAgentProcess(
  dir: string,
  extra: string[] = [],
): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(
    PERSEUS,
    [
      'serve',
      'agent',
      '--listen',
      `unix:${path.join(dir, 'a.sock')}`,
      '--agent-backend',
      'simulated',
      '--agent-sim-devices',
      '2',
      '--agent-state-file',
      path.join(dir, 'state.json'),
      '--agent-audit-log',
      path.join(dir, 'audit.log'),
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PERSEUS_LOG_LEVEL: 'warn' } },
  );
  children.add(child);
  child.stderr?.resume();
  const msg = await waitForLine(child, (m) => m['event'] === 'serving');
  return { child, address: String(msg['address']) };
}

function connect(address: string): AgentClient {
  const c = new (perseusGrpc().perseus.agent.v1.GpuAgent)(
    address,
    grpc.credentials.createInsecure(),
  );
  clients.push(c);
  return c;
}

async function lockedClock(client: AgentClient, index = 0): Promise<number> {
  const res = await call(client, 'ListDevices', {});
  return res.devices[index]!.locked_sm_clock_mhz;
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((r) => child.once('exit', (code) => r(code)));
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited(child);
  }
  children.clear();
});

test('a trainer killed with SIGKILL mid-stream: clocks back to default (stream cancel, before the TTL)', async () => {
  const dir = tempDir();
  const agent = await startAgentProcess(dir);
  const trainer = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(__dirname, 'fixtures', 'session-client.ts'),
      agent.address,
      '1095',
      '5',
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: REPO,
    },
  );
  children.add(trainer);
  const applied = await waitForLine(trainer, (m) => m['event'] === 'applied');
  expect(applied['mhz']).toBe(1095);
  const client = connect(agent.address);
  expect(await lockedClock(client)).toBe(1095);
  trainer.kill('SIGKILL');
  await until(async () => (await lockedClock(client)) === 0, 5000);
  const audit = fs
    .readFileSync(path.join(dir, 'audit.log'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const release = audit.find((a) => a.action === 'lease.release');
  expect(release).toMatchObject({ device: 0, result: 'ok', who: { jobId: 'crashy', rank: 1 } });
  // Released by the stream's end, not by the 5 s TTL the trainer asked for.
  expect(release.value).toMatch(
    /^(stream cancelled \(client gone or keepalive lost\)|client closed the stream); 1 clock changes$/,
  );
});

test('an agent whose socket a live server holds exits with the reason: the live socket stays, the state file is clean', async () => {
  const dir = tempDir();
  const sock = path.join(dir, 'a.sock');
  const live = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => live.listen(sock, r));
  try {
    const child = spawn(
      PERSEUS,
      [
        'serve',
        'agent',
        '--listen',
        `unix:${sock}`,
        '--agent-backend',
        'simulated',
        '--agent-sim-devices',
        '2',
        '--agent-state-file',
        path.join(dir, 'state.json'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PERSEUS_LOG_LEVEL: 'warn' } },
    );
    children.add(child);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout?.resume();
    expect(await exited(child)).not.toBe(0);
    expect(stderr).toContain(`${sock} is in use: another server is listening on it`);
    expect(fs.statSync(sock).isSocket()).toBe(true);
    await new Promise<void>((resolve, reject) => {
      const c = net.connect(sock, () => {
        c.destroy();
        resolve();
      });
      c.on('error', reject);
    });
    // The agent had reset its (simulated) devices at startup; its failed start closed it cleanly.
    expect(readStateFile(path.join(dir, 'state.json'))!.cleanShutdown).toBe(true);
  } finally {
    live.close();
  }
});

test('a trainer frozen with SIGSTOP (connection open, no traffic): the lease TTL resets the device', async () => {
  const dir = tempDir();
  const agent = await startAgentProcess(dir);
  const trainer = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(__dirname, 'fixtures', 'session-client.ts'),
      agent.address,
      '1200',
      '1',
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: REPO,
    },
  );
  children.add(trainer);
  await waitForLine(trainer, (m) => m['event'] === 'applied');
  trainer.kill('SIGSTOP');
  const client = connect(agent.address);
  try {
    await until(async () => (await lockedClock(client)) === 0, 5000);
    const audit = fs.readFileSync(path.join(dir, 'audit.log'), 'utf8');
    expect(audit).toContain('lease expired after 1s without traffic');
  } finally {
    trainer.kill('SIGKILL');
  }
});

test('agent killed with SIGKILL while a clock is locked: a restarted agent resets it at startup', async () => {
  const dir = tempDir();
  const first = await startAgentProcess(dir);
  const client = connect(first.address);
  const s = new SessionClient(client);
  s.open('job-a', 0);
  await s.opened();
  s.send({
    begin: {
      seq: 1,
      instruction: 'INSTRUCTION_KIND_FORWARD',
      microbatch: 0,
      frequency_mhz: 1155,
      t_ns: nowNs(),
    },
  });
  s.send({ end: { seq: 1, t_ns: nowNs() } });
  expect((await s.measurement(1)).frequency_applied_mhz).toBe(1155);
  // The simulated registers persist within 50 ms (the dirty marker was written before the change).
  await until(
    () => readStateFile(path.join(dir, 'state.json'))?.devices['0']?.sim?.lockedSmClockMhz === 1155,
  );
  first.child.kill('SIGKILL');
  await exited(first.child);
  s.stream.cancel();
  const left = readStateFile(path.join(dir, 'state.json'))!;
  expect(left.cleanShutdown).toBe(false);
  expect(left.devices['0']).toMatchObject({
    dirty: true,
    lease: { jobId: 'job-a', rank: 3 },
    sim: { lockedSmClockMhz: 1155 },
  });
  expect(left.devices['1']?.dirty).toBe(false);

  const second = await startAgentProcess(dir);
  const client2 = connect(second.address);
  expect(await lockedClock(client2, 0)).toBe(0);
  const after = readStateFile(path.join(dir, 'state.json'))!;
  expect(after.devices['0']).toMatchObject({ dirty: false, sim: { lockedSmClockMhz: 0 } });
  expect(after.devices['0']?.lease).toBeUndefined();
  const audit = fs
    .readFileSync(path.join(dir, 'audit.log'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const startupResets = audit.filter((a) => a.action === 'reset.startup');
  // First start: no state file → both devices; restart: only the device the crash left locked.
  expect(startupResets.map((a) => a.device)).toEqual([0, 1, 0]);
  expect(startupResets[2].value).toMatch(/^left by pid \d+ \(crashed\), locked 1155 MHz$/);
  expect(startupResets[2].who).toMatchObject({ jobId: 'job-a', rank: 3 });
  // Energy kept counting across the crash (monotonic counter).
  const e = await call(client2, 'ReadEnergy', { device_index: 0 });
  expect(e.energy_j * 1000).toBeGreaterThan(left.devices['0']!.sim!.energyMj);
});

test('SIGTERM resets every device before exiting and leaves a clean state file', async () => {
  const dir = tempDir();
  const agent = await startAgentProcess(dir);
  const client = connect(agent.address);
  const s = new SessionClient(client);
  s.open('job-a', 1);
  await s.opened();
  s.send({
    begin: {
      seq: 1,
      instruction: 'INSTRUCTION_KIND_FORWARD',
      microbatch: 0,
      frequency_mhz: 1305,
      t_ns: nowNs(),
    },
  });
  await until(async () => (await lockedClock(client, 1)) === 1305);
  agent.child.kill('SIGTERM');
  expect(await exited(agent.child)).toBe(0);
  expect((await s.done).code).toBe(grpc.status.UNAVAILABLE);
  const st = readStateFile(path.join(dir, 'state.json'))!;
  expect(st.cleanShutdown).toBe(true);
  expect(st.devices['1']).toMatchObject({
    dirty: false,
    sim: { lockedSmClockMhz: 0, memoryClockLocked: false },
  });
  expect(fs.existsSync(path.join(dir, 'a.sock'))).toBe(false);
  const audit = fs.readFileSync(path.join(dir, 'audit.log'), 'utf8');
  expect(audit).toContain('"action":"reset.shutdown"');
});

test('keepalive loss (peer frozen, lease TTL far away): server keepalive cancels the stream and the device is reset', async () => {
  // In-process agent with a 300 ms keepalive (production: 10 s + 5 s), a trainer that asked for a
  // 60 s lease, frozen with SIGSTOP so it answers no HTTP/2 ping.
  const agent = await startAgent({ auditLogFile: path.join(tempDir(), 'audit.log') }, tempDir(), {
    'grpc.keepalive_time_ms': 300,
    'grpc.keepalive_timeout_ms': 300,
  });
  const trainer = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(__dirname, 'fixtures', 'session-client.ts'),
      agent.address,
      '1305',
      '60',
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: REPO,
    },
  );
  children.add(trainer);
  try {
    await waitForLine(trainer, (m) => m['event'] === 'applied');
    expect(await lockedClock(agent.client)).toBe(1305);
    trainer.kill('SIGSTOP');
    await until(async () => (await lockedClock(agent.client)) === 0, 10_000);
    const audit = fs.readFileSync(agent.module.options.auditLogFile!, 'utf8');
    expect(audit).toContain(
      '"value":"stream cancelled (client gone or keepalive lost); 1 clock changes"',
    );
    expect(agent.module.core.stats.leaseExpiries).toBe(0);
  } finally {
    trainer.kill('SIGKILL');
    await agent.stop();
  }
});
