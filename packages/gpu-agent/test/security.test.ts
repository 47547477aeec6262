import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { perseusGrpc } from '@perseus/proto';
import { createLogger } from '@perseus/service-kit';
import type { AgentClient, RunningAgent } from './helpers';
import { SessionClient, call, expectGrpcError, nowNs, startAgent, tempDir } from './helpers';
import { createAgentModule, parseTokenFile } from '../src';

const READ_SECRET = 'read-secret-0123456789';
const CONTROL_SECRET = 'control-secret-0123456789';

function bearer(secret: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${secret}`);
  return md;
}

describe('token file', () => {
  test('parses names, scopes and secrets; comments and blanks ignored', () => {
    const tokens = parseTokenFile(
      `# ops\nmonitor read ${READ_SECRET}\n\ntrainer control ${CONTROL_SECRET}\n`,
    );
    // A control token also reads on the agent.
    expect(tokens.map((t) => [t.name, [...t.scopes].sort()])).toEqual([
      ['monitor', ['read']],
      ['trainer', ['control', 'read']],
    ]);
    expect(tokens[0]!.digest).toHaveLength(32);
  });
  test.each([
    [
      'monitor root 0123456789abcdef',
      'tokens:1: scope must be read, report, control or admin, got "root"',
    ],
    ['monitor read', 'tokens:1: expected "<name> <scope>[,<scope>] <secret> [jobs=<id>,…|*]"'],
    ['monitor read short', 'tokens:1: secret of monitor must have at least 16 characters'],
  ])('rejects %j', (line, message) => {
    expect(() => parseTokenFile(line, 'tokens')).toThrow(message);
  });
});

describe('main listener policy', () => {
  const logger = createLogger('t', 'silent');
  test.each([
    [
      'non-loopback TCP',
      { listenAddress: '0.0.0.0:0' },
      'the agent serves plain TCP only on loopback, got 0.0.0.0:0',
    ],
    [
      'loopback without tokens when not allowed',
      { listenAddress: '127.0.0.1:0', allowInsecureLoopback: false },
      'refusing unauthenticated loopback TCP (127.0.0.1:0) with the simulated backend',
    ],
    [
      'TCP listener without TLS',
      { tcpListen: '127.0.0.1:0' },
      'tcpListen needs tlsCertFile and tlsKeyFile',
    ],
  ])('refuses %s', async (_name, opts, message) => {
    const dir = tempDir();
    await expect(
      createAgentModule({
        logger,
        env: {},
        backend: 'simulated',
        simulatedDevices: 1,
        stateFile: path.join(dir, 's.json'),
        ...opts,
      }),
    ).rejects.toThrow(message);
  });
});

describe('TLS listener with scoped tokens', () => {
  let agent: RunningAgent;
  let tlsClient: (md?: grpc.Metadata) => AgentClient;
  const made: AgentClient[] = [];

  beforeAll(async () => {
    const dir = tempDir();
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    // A throwaway self-signed certificate for 127.0.0.1 (openssl is part of the test toolchain).
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
    const tokenFile = path.join(dir, 'tokens');
    fs.writeFileSync(
      tokenFile,
      `monitor read ${READ_SECRET}\ntrainer control ${CONTROL_SECRET}\n`,
      {
        mode: 0o600,
      },
    );
    agent = await startAgent(
      {
        tcpListen: '127.0.0.1:0',
        tlsCertFile: cert,
        tlsKeyFile: key,
        tokenFile,
        auditLogFile: path.join(dir, 'audit.log'),
        metricsListen: '127.0.0.1:0',
      },
      dir,
    );
    const creds = grpc.credentials.createSsl(fs.readFileSync(cert));
    tlsClient = () => {
      const c = new (perseusGrpc().perseus.agent.v1.GpuAgent)(agent.module.tlsAddress!, creds);
      made.push(c);
      return c;
    };
  });

  afterAll(async () => {
    for (const c of made) c.close();
    await agent.stop();
  });

  test('no token → UNAUTHENTICATED; unknown token → UNAUTHENTICATED', async () => {
    const c = tlsClient();
    const none = await expectGrpcError(call(c, 'ListDevices', {}));
    expect(none.code).toBe(grpc.status.UNAUTHENTICATED);
    const wrong = await expectGrpcError(
      call(c, 'ListDevices', {}, bearer('not-a-token-0123456789')),
    );
    expect(wrong.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(wrong.details).toBe('unknown token');
  });

  test('read scope: ListDevices and ReadEnergy yes, control RPCs PERMISSION_DENIED', async () => {
    const c = tlsClient();
    const md = bearer(READ_SECRET);
    expect((await call(c, 'ListDevices', {}, md)).devices).toHaveLength(2);
    expect((await call(c, 'ReadEnergy', { device_index: 0 }, md)).energy_j).toBeGreaterThan(0);
    const set = await expectGrpcError(
      call(c, 'SetClocks', { lease_id: 'x', device_index: 0, sm_clock_mhz: 1410 }, md),
    );
    expect(set.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(set.details).toBe('token "monitor" has scope read; this call needs control');
    const reset = await expectGrpcError(
      call(c, 'ResetClocks', { lease_id: 'x', device_index: 0 }, md),
    );
    expect(reset.code).toBe(grpc.status.PERMISSION_DENIED);
    const s = new SessionClient(c, md);
    s.open('job-r', 0);
    expect((await s.done).code).toBe(grpc.status.PERMISSION_DENIED);
  });

  test('control scope: a session works and the audit line names the token', async () => {
    const c = tlsClient();
    const s = new SessionClient(c, bearer(CONTROL_SECRET));
    s.open('job-c', 1);
    await s.opened();
    s.send({
      begin: {
        seq: 1,
        instruction: 'INSTRUCTION_KIND_FORWARD',
        frequency_mhz: 1005,
        t_ns: nowNs(),
      },
    });
    s.send({ end: { seq: 1, t_ns: nowNs() } });
    expect((await s.measurement(1)).frequency_applied_mhz).toBe(1005);
    const metrics = await new Promise<string>((resolve, reject) => {
      http
        .get(`http://${agent.module.metricsAddress}/metrics`, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve(body));
        })
        .on('error', reject);
    });
    expect(metrics).toMatch(
      /^perseus_agent_sm_clock_locked_hertz\{device="1",uuid="[^"]+",simulated="true"\} 1005000000$/m,
    );
    expect(metrics).toMatch(
      /^perseus_agent_lease_active\{device="1",uuid="[^"]+",simulated="true"\} 1$/m,
    );
    expect(metrics).toMatch(
      /^perseus_agent_lease_active\{device="0",uuid="[^"]+",simulated="true"\} 0$/m,
    );
    expect(metrics).toMatch(
      /^perseus_agent_energy_joules_total\{device="0",uuid="[^"]+",simulated="true"\} [0-9.]+$/m,
    );
    expect(metrics).toMatch(/^perseus_agent_event_to_apply_seconds_count 1$/m);
    expect(metrics).toMatch(/^perseus_agent_sessions_opened_total 1$/m);
    expect(metrics).toMatch(/^perseus_agent_measurements_total\{simulated="true"\} 1$/m);
    s.stream.end();
    expect((await s.done).code).toBe(grpc.status.OK);
    const audit = fs
      .readFileSync(path.join(agent.dir, 'audit.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const opened = audit.find((a) => a.action === 'lease.open');
    expect(opened.who.identity).toBe('token:trainer');
    expect(opened.who.peer).toMatch(/^(ipv4:)?127\.0\.0\.1:\d+$/);
    expect(opened).toMatchObject({ device: 1, result: 'ok', who: { jobId: 'job-c', rank: 3 } });
  });

  test('a plaintext client cannot talk to the TLS port', async () => {
    const c = new (perseusGrpc().perseus.agent.v1.GpuAgent)(
      agent.module.tlsAddress!,
      grpc.credentials.createInsecure(),
    );
    made.push(c);
    const err = await expectGrpcError(call(c, 'ListDevices', {}, bearer(READ_SECRET)));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
  });

  test('the Unix socket is mode 0660 and needs no token', async () => {
    const sock = agent.address.slice('unix:'.length);
    expect(fs.statSync(sock).mode & 0o777).toBe(0o660);
    expect((await call(agent.client, 'ListDevices', {})).devices).toHaveLength(2);
  });
});
