import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { perseusGrpc } from '@perseus/proto';
import { PerseusServer, createLogger, decodeFieldViolations } from '@perseus/service-kit';
import type { AgentModuleOptions } from '../src';
import { SimulatedBackend, createAgentModule, parseUidList, readStateFile } from '../src';
import type { AgentClient, RunningAgent } from './helpers';
import { SessionClient, call, expectGrpcError, startAgent, tempDir } from './helpers';

/**
 * AdminReset (issue 15): the privileged reset a Slurm epilog runs after a job, even a killed one.
 * Who may call it — root or the agent's uid on the Unix socket, or an `admin` token; never a
 * trainer of the socket's group, a control token or an anonymous loopback client — and the state
 * of every device after it: the chosen job's devices at default clocks with no lease, its sessions
 * ended with ABORTED, every other job's devices untouched.
 */

const OWN_UID = process.getuid!();
/** A uid that is not this test's: with it as the only admin uid, this process is an ordinary client. */
const OTHER_UID = OWN_UID === 0 ? 4242 : 0;
const ADMIN_SECRET = 'admin-secret-0123456789';
const CONTROL_SECRET = 'control-secret-0123456789';

const running: Array<{ stop(): Promise<void> }> = [];
afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.stop();
});

async function agentOnSocket(opts: Partial<AgentModuleOptions> = {}): Promise<RunningAgent> {
  const a = await startAgent({ simulatedDevices: 3, ...opts });
  running.push(a);
  return a;
}

function tokenFile(dir: string): string {
  const file = path.join(dir, 'tokens');
  fs.writeFileSync(file, `ops admin ${ADMIN_SECRET}\ntrainer control ${CONTROL_SECRET}\n`, {
    mode: 0o600,
  });
  return file;
}

function bearer(secret: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${secret}`);
  return md;
}

/** A job's rank holding `device` with its SM clock locked at 1005 MHz. */
async function holding(client: AgentClient, jobId: string, device: number): Promise<SessionClient> {
  const s = new SessionClient(client);
  s.open(jobId, device);
  const { lease_id } = await s.opened();
  await call(client, 'SetClocks', { lease_id, device_index: device, sm_clock_mhz: 1005 });
  return s;
}

async function lockedClocks(client: AgentClient): Promise<Array<[number, string]>> {
  return (await call(client, 'ListDevices', {})).devices.map((d) => [
    d.locked_sm_clock_mhz,
    d.lease?.job_id ?? '',
  ]);
}

describe('who may reset', () => {
  test('on the Unix socket a uid outside the admin uids is PERMISSION_DENIED and nothing changes', async () => {
    const a = await agentOnSocket({ adminUids: [OTHER_UID] });
    const victim = await holding(a.client, 'victim', 0);
    for (const req of [
      { job_id: 'victim' },
      { all_devices: true },
      { devices: { indices: [0] } },
    ]) {
      const err = await expectGrpcError(call(a.client, 'AdminReset', req));
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(err.details).toBe(
        `this call needs the agent's admin credential (uid ${OTHER_UID} on the agent's Unix socket, or a token with scope admin); it came from uid ${OWN_UID}`,
      );
    }
    expect(await lockedClocks(a.client)).toEqual([
      [1005, 'victim'],
      [0, ''],
      [0, ''],
    ]);
    victim.stream.end();
    expect((await victim.done).code).toBe(grpc.status.OK);
  });

  test('admin uids "none": on the Unix socket only an admin token resets', async () => {
    const a = await agentOnSocket({ adminUids: parseUidList('x', 'none') });
    await holding(a.client, 'victim', 0);
    const err = await expectGrpcError(call(a.client, 'AdminReset', { all_devices: true }));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toBe(
      `this call needs the agent's admin credential (a token with scope admin); it came from uid ${OWN_UID}`,
    );
    expect((await lockedClocks(a.client))[0]).toEqual([1005, 'victim']);
  });

  test('on the Unix socket a control token is refused, an admin token passes', async () => {
    const dir = tempDir();
    const a = await agentOnSocket({ adminUids: [OTHER_UID], tokenFile: tokenFile(dir) });
    await holding(a.client, 'victim', 1);
    const err = await expectGrpcError(
      call(a.client, 'AdminReset', { all_devices: true }, bearer(CONTROL_SECRET)),
    );
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toMatch(/token "trainer" has scope control,read; this call needs admin/);
    const res = await call(a.client, 'AdminReset', { all_devices: true }, bearer(ADMIN_SECRET));
    expect(res.devices.map((d) => [d.index, d.ok, d.locked_sm_clock_mhz])).toEqual([
      [0, true, 0],
      [1, true, 0],
      [2, true, 0],
    ]);
    expect(await lockedClocks(a.client)).toEqual([
      [0, ''],
      [0, ''],
      [0, ''],
    ]);
  });

  test('the default admin uids are root and the agent’s own', async () => {
    const a = await agentOnSocket();
    expect(a.module.options.adminUids).toEqual(OWN_UID === 0 ? [0] : [0, OWN_UID]);
    const res = await call(a.client, 'AdminReset', { devices: { indices: [2] } });
    expect(res.devices.map((d) => [d.index, d.ok, d.ended_lease])).toEqual([[2, true, null]]);
  });

  describe('loopback TCP', () => {
    async function agentOnTcp(opts: Partial<AgentModuleOptions>): Promise<AgentClient> {
      const dir = tempDir();
      const logger = createLogger('admin-test', 'silent');
      const module = await createAgentModule({
        backend: 'simulated',
        simulatedDevices: 2,
        stateFile: path.join(dir, 'state.json'),
        listenAddress: '127.0.0.1:0',
        env: {},
        adminUids: [OWN_UID],
        ...opts,
        logger,
      });
      const server = new PerseusServer({ address: '127.0.0.1:0', logger, shutdownGraceMs: 500 });
      for (const s of module.services) server.addService(s);
      server.onShutdown(() => module.close());
      const bound = await server.start();
      await module.onListening?.(bound);
      const client = new (perseusGrpc().perseus.agent.v1.GpuAgent)(
        bound,
        grpc.credentials.createInsecure(),
      );
      running.push({
        async stop() {
          client.close();
          await server.shutdown(500);
        },
      });
      return client;
    }

    test('an anonymous client (insecure loopback, simulated) may control but never reset', async () => {
      const client = await agentOnTcp({});
      await holding(client, 'victim', 0);
      const err = await expectGrpcError(call(client, 'AdminReset', { all_devices: true }));
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(err.details).toMatch(
        /^this call needs the agent's admin credential \(a token with scope admin\); it came from insecure-loopback /,
      );
      expect(await lockedClocks(client)).toEqual([
        [1005, 'victim'],
        [0, ''],
      ]);
    });

    test('with tokens: control refused, admin resets, admin does not grant control', async () => {
      const client = await agentOnTcp({ tokenFile: tokenFile(tempDir()) });
      const trainer = new SessionClient(client, bearer(CONTROL_SECRET));
      trainer.open('victim', 1);
      await trainer.opened();
      expect(
        (
          await expectGrpcError(
            call(client, 'AdminReset', { job_id: 'victim' }, bearer(CONTROL_SECRET)),
          )
        ).code,
      ).toBe(grpc.status.PERMISSION_DENIED);
      const admin = new SessionClient(client, bearer(ADMIN_SECRET));
      admin.open('intruder', 0);
      expect((await admin.done).code).toBe(grpc.status.PERMISSION_DENIED);
      const res = await call(client, 'AdminReset', { job_id: 'victim' }, bearer(ADMIN_SECRET));
      expect(res.devices.map((d) => [d.index, d.ended_lease?.job_id, d.ok])).toEqual([
        [1, 'victim', true],
      ]);
      expect((await trainer.done).code).toBe(grpc.status.ABORTED);
    });
  });
});

describe('state after a reset', () => {
  test("a job's reset ends its steps' sessions and resets their devices; other jobs keep theirs", async () => {
    const dir = tempDir();
    const audit = path.join(dir, 'audit.log');
    const a = await agentOnSocket({ auditLogFile: audit });
    const step0 = await holding(a.client, 'slurm-42.0', 0);
    const other = await holding(a.client, 'slurm-420', 1);
    const step1 = await holding(a.client, 'slurm-42.1', 2);

    const res = await call(a.client, 'AdminReset', {
      job_id: 'slurm-42',
      reason: 'slurm epilog job 42',
    });
    expect(
      res.devices.map((d) => [
        d.index,
        d.ok,
        d.error,
        d.locked_sm_clock_mhz,
        d.ended_lease?.job_id,
      ]),
    ).toEqual([
      [0, true, '', 0, 'slurm-42.0'],
      [2, true, '', 0, 'slurm-42.1'],
    ]);
    expect(res.devices[0]!.ended_lease!.rank).toMatchObject({ rank: 3, pp_rank: 1 });
    for (const s of [step0, step1]) {
      const status = await s.done;
      expect(status.code).toBe(grpc.status.ABORTED);
      expect(status.details).toMatch(/admin reset \(job slurm-42\): slurm epilog job 42$/);
    }
    expect(await lockedClocks(a.client)).toEqual([
      [0, ''],
      [1005, 'slurm-420'],
      [0, ''],
    ]);
    const state = readStateFile(path.join(a.dir, 'state.json'))!;
    expect(state.devices['0']).toMatchObject({ dirty: false });
    expect(state.devices['0']!.lease).toBeUndefined();
    expect(state.devices['1']).toMatchObject({ dirty: true, lease: { jobId: 'slurm-420' } });
    const lines = fs
      .readFileSync(audit, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string; device: number; who: { uid?: number } });
    const resets = lines.filter((l) => l.action === 'reset.admin');
    expect(resets.map((l) => [l.device, l.who.uid])).toEqual(
      expect.arrayContaining([
        [0, OWN_UID],
        [2, OWN_UID],
      ]),
    );
    expect(resets).toHaveLength(2);

    // Nothing left for the job: an empty answer, not an error (an epilog after a clean exit).
    expect((await call(a.client, 'AdminReset', { job_id: 'slurm-42' })).devices).toEqual([]);
    other.stream.end();
    await other.done;
  });

  test("a device whose reset failed when its job's session ended is reset by the job's AdminReset", async () => {
    /** A driver that refuses the next `failures` SM-clock resets. */
    class FlakyResetBackend extends SimulatedBackend {
      failures = 0;
      override async resetSmClock(index: number): Promise<void> {
        if (this.failures > 0) {
          this.failures--;
          throw new Error('GPU is busy');
        }
        return super.resetSmClock(index);
      }
    }
    const backend = new FlakyResetBackend({ count: 2 });
    const a = await agentOnSocket({ backendInstance: backend });
    const s = await holding(a.client, 'slurm-9.0', 1);
    backend.failures = 1;
    s.stream.end(); // the job's rank exits; the agent's reset of its device fails
    await s.done;
    expect(await lockedClocks(a.client)).toEqual([
      [0, ''],
      [1005, ''],
    ]);
    expect(readStateFile(path.join(a.dir, 'state.json'))!.devices['1']).toMatchObject({
      dirty: true,
      lease: { jobId: 'slurm-9.0' },
    });
    // Another job's reset does not touch it; the epilog of job 9 does.
    expect((await call(a.client, 'AdminReset', { job_id: 'slurm-90' })).devices).toEqual([]);
    const res = await call(a.client, 'AdminReset', { job_id: 'slurm-9' });
    expect(res.devices.map((d) => [d.index, d.ok, d.locked_sm_clock_mhz, d.ended_lease])).toEqual([
      [1, true, 0, null],
    ]);
    expect(await lockedClocks(a.client)).toEqual([
      [0, ''],
      [0, ''],
    ]);
    expect(readStateFile(path.join(a.dir, 'state.json'))!.devices['1']).toMatchObject({
      dirty: false,
    });
  });

  test('all devices and listed devices; a reset device can be leased again', async () => {
    const a = await agentOnSocket();
    await holding(a.client, 'a', 0);
    await holding(a.client, 'b', 1);
    const listed = await call(a.client, 'AdminReset', { devices: { indices: [1] } });
    expect(listed.devices.map((d) => [d.index, d.ended_lease?.job_id])).toEqual([[1, 'b']]);
    expect(await lockedClocks(a.client)).toEqual([
      [1005, 'a'],
      [0, ''],
      [0, ''],
    ]);
    const again = await holding(a.client, 'c', 1);
    const all = await call(a.client, 'AdminReset', { all_devices: true });
    expect(all.devices.map((d) => [d.index, d.ok, d.ended_lease?.job_id ?? ''])).toEqual([
      [0, true, 'a'],
      [1, true, 'c'],
      [2, true, ''],
    ]);
    expect((await again.done).code).toBe(grpc.status.ABORTED);
    expect(await lockedClocks(a.client)).toEqual([
      [0, ''],
      [0, ''],
      [0, ''],
    ]);
  });
});

describe('validation', () => {
  test.each([
    ['no target', {}, 'target', 'is required: job_id, devices or all_devices'],
    ['a bad job id', { job_id: 'a b' }, 'job_id', 'must match [A-Za-z0-9._-]{1,128}, got "a b"'],
    [
      'no devices',
      { devices: { indices: [] } },
      'devices.indices',
      'is required (at least one device)',
    ],
    [
      'a device twice',
      { devices: { indices: [1, 1] } },
      'devices.indices',
      'must be distinct, got 1,1',
    ],
    [
      'a device the node lacks',
      { devices: { indices: [0, 7] } },
      'devices.indices[1]',
      'no device 7 on this node (it has 3: 0-2)',
    ],
    ['all_devices false', { all_devices: false }, 'all_devices', 'must be true when set'],
    [
      'a reason with a newline',
      { all_devices: true, reason: 'x\n{"forged":1}' },
      'reason',
      'must match printable ASCII, got "x\\n{\\"forged\\":1}"',
    ],
    [
      'a long reason',
      { all_devices: true, reason: 'r'.repeat(201) },
      'reason',
      'must have at most 200 characters, got 201',
    ],
  ])('%s is INVALID_ARGUMENT naming the field', async (_name, req, field, description) => {
    const a = await agentOnSocket();
    await holding(a.client, 'victim', 0);
    const err = await expectGrpcError(call(a.client, 'AdminReset', req));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(decodeFieldViolations(err.metadata)).toContainEqual({ field, description });
    expect((await lockedClocks(a.client))[0]).toEqual([1005, 'victim']);
  });

  test('admin uid lists', () => {
    expect(parseUidList('x', '0, 998')).toEqual([0, 998]);
    expect(parseUidList('x', 'none')).toEqual([]);
    for (const bad of ['', 'root', '1,1', '-1', '4294967295'])
      expect(() => parseUidList('PERSEUS_AGENT_ADMIN_UIDS', bad)).toThrow(
        `PERSEUS_AGENT_ADMIN_UIDS must be distinct uids like 0,998, or none, got ${JSON.stringify(bad)}`,
      );
  });
});
