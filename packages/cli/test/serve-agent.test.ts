import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { createLogger } from '@perseus/service-kit';
import type { AgentModule } from '@perseus/gpu-agent';
import {
  addAgentFlags,
  agentModuleFromFlags,
  agentOptionsFromFlags,
} from '../src/commands/serve-agent';

function parse(argv: string[]): Record<string, unknown> {
  const cmd = addAgentFlags(new Command('agent')).option('--listen <address>').exitOverride();
  cmd.parse(argv, { from: 'user' });
  return cmd.opts();
}

test('every agent flag maps onto its option', () => {
  const flags = parse([
    '--agent-backend',
    'simulated',
    '--agent-sim-model',
    'a40',
    '--agent-sim-devices',
    '4',
    '--agent-sim-driver-latency-ms',
    '2',
    '--agent-sim-time-scale',
    '0.25',
    '--agent-sim-counter-period-ms',
    '100',
    '--agent-sim-power-jitter',
    '0.02',
    '--agent-profile-dir',
    '/p',
    '--agent-state-file',
    '/s.json',
    '--agent-lease-ttl-s',
    '10',
    '--agent-lease-ttl-max-s',
    '20',
    '--agent-energy-sample-ms',
    '50',
    '--agent-no-lock-memory-clock',
    '--agent-socket-mode',
    '0640',
    '--agent-socket-group',
    'perseus',
    '--agent-metrics-listen',
    '127.0.0.1:9400',
    '--agent-tcp-listen',
    '127.0.0.1:50053',
    '--agent-tls-cert',
    '/c.pem',
    '--agent-tls-key',
    '/k.pem',
    '--agent-tls-client-ca',
    '/ca.pem',
    '--agent-token-file',
    '/t',
    '--agent-allow-insecure-loopback',
    '--agent-audit-log',
    '/a.log',
    '--agent-nvml-library',
    '/n.so',
    '--agent-amdsmi-library',
    '/m.so',
  ]);
  expect(agentOptionsFromFlags(flags)).toEqual({
    backend: 'simulated',
    simulatedModel: 'a40',
    simulatedDevices: 4,
    simulatedDriverLatencyMs: 2,
    simulatedTimeScale: 0.25,
    simulatedCounterPeriodMs: 100,
    simulatedPowerJitter: 0.02,
    profileDir: '/p',
    stateFile: '/s.json',
    leaseTtlDefaultS: 10,
    leaseTtlMaxS: 20,
    energySampleIntervalMs: 50,
    lockMemoryClock: false,
    socketMode: 0o640,
    socketGroup: 'perseus',
    metricsListen: '127.0.0.1:9400',
    tcpListen: '127.0.0.1:50053',
    tlsCertFile: '/c.pem',
    tlsKeyFile: '/k.pem',
    tlsClientCaFile: '/ca.pem',
    tokenFile: '/t',
    allowInsecureLoopback: true,
    auditLogFile: '/a.log',
    nvmlLibrary: '/n.so',
    amdsmiLibrary: '/m.so',
  });
});

test('unset flags leave options to env and defaults', () => {
  const o = agentOptionsFromFlags(parse([]));
  expect(Object.values(o).every((v) => v === undefined)).toBe(true);
});

test.each([
  [
    ['--agent-backend', 'cuda'],
    '--agent-backend must be one of auto, nvml, amdsmi, simulated, got "cuda"',
  ],
  [['--agent-sim-devices', 'many'], '--agent-sim-devices must be a number, got "many"'],
  [['--agent-socket-mode', 'rw'], '--agent-socket-mode must be an octal mode like 0660, got "rw"'],
])('rejects %j', (argv, message) => {
  expect(() => agentOptionsFromFlags(parse(argv))).toThrow(message);
});

test('flags win over PERSEUS_AGENT_* env; env over defaults', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'serve-agent-'));
  const saved = { ...process.env };
  process.env['PERSEUS_AGENT_BACKEND'] = 'simulated';
  process.env['PERSEUS_AGENT_SIM_DEVICES'] = '3';
  process.env['PERSEUS_AGENT_LEASE_TTL_S'] = '12';
  process.env['PERSEUS_AGENT_STATE_FILE'] = path.join(dir, 'env-state.json');
  try {
    const mod = (await agentModuleFromFlags(
      parse(['--agent-sim-devices', '5', '--listen', `unix:${path.join(dir, 'a.sock')}`]),
      {
        logger: createLogger('t', 'silent'),
      },
    )) as AgentModule;
    expect(mod.name).toBe('agent');
    expect(mod.core.devices()).toHaveLength(5);
    expect(mod.options.leaseTtlDefaultS).toBe(12);
    expect(mod.options.stateFile).toBe(path.join(dir, 'env-state.json'));
    expect(mod.options.leaseTtlMaxS).toBe(300);
    expect(mod.services.map((s) => s.name)).toEqual(['perseus.agent.v1.GpuAgent']);
    await mod.close();
    expect(fs.existsSync(path.join(dir, 'env-state.json'))).toBe(true);
  } finally {
    process.env = saved;
  }
});

test('a non-loopback plain TCP --listen is refused before anything starts', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'serve-agent-'));
  await expect(
    agentModuleFromFlags(
      parse([
        '--agent-backend',
        'simulated',
        '--agent-state-file',
        path.join(dir, 's.json'),
        '--listen',
        '0.0.0.0:50051',
      ]),
      {
        logger: createLogger('t', 'silent'),
      },
    ),
  ).rejects.toThrow('the agent serves plain TCP only on loopback');
});

test('the all-in-one serve defaults to simulated GPUs and ./.perseus-data; serve agent keeps auto and /var/lib', async () => {
  const all = addAgentFlags(new Command('serve')).option('--listen <address>').exitOverride();
  all.parse([], { from: 'user' });
  expect(all.opts()['agentAllInOne']).toBe(true);
  const alone = addAgentFlags(new Command('agent')).exitOverride();
  alone.parse([], { from: 'user' });
  expect(alone.opts()['agentAllInOne']).toBeUndefined();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'serve-agent-'));
  const cwd = process.cwd();
  const saved = { ...process.env };
  delete process.env['PERSEUS_AGENT_BACKEND'];
  delete process.env['PERSEUS_AGENT_STATE_FILE'];
  process.chdir(dir);
  try {
    const mod = (await agentModuleFromFlags(
      { ...all.opts(), listen: '127.0.0.1:0' },
      { logger: createLogger('t', 'silent') },
    )) as AgentModule;
    expect(mod.options.backend).toBe('simulated');
    expect(mod.options.stateFile).toBe('.perseus-data/agent/state.json');
    await mod.close();
    expect(fs.existsSync(path.join(dir, '.perseus-data', 'agent', 'state.json'))).toBe(true);
  } finally {
    process.chdir(cwd);
    process.env = saved;
  }
});
