import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import koffi from 'koffi';
import { createLogger } from '@perseus/service-kit';
import { AmdSmiBackend, NvmlBackend, StateFile, createBackend } from '../src';
import type { RunningAgent } from './helpers';
import { SessionClient, call, nowNs, startAgent, tempDir, until } from './helpers';

/**
 * The real FFI path (koffi, async calls on libuv threads) against fake driver libraries built here
 * with gcc from tools/fake-gpu-libs. The fakes log every call, so the tests assert the exact driver
 * calls the agent makes — no GPU needed.
 */

const REPO = path.resolve(__dirname, '..', '..', '..');
let libDir: string;
let nvmlPath: string;
let amdPath: string;
let log: string;

function calls(): string[] {
  return fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : [];
}

beforeAll(() => {
  libDir = execFileSync('bash', [path.join(REPO, 'tools', 'fake-gpu-libs', 'build.sh')], {
    encoding: 'utf8',
  }).trim();
  nvmlPath = path.join(libDir, 'libnvidia-ml.so.1');
  amdPath = path.join(libDir, 'libamd_smi.so');
});

// jest hands tests a copy of process.env that native getenv() never sees: configure the fakes
// through their test-only setters instead.
function fakes() {
  const nv = koffi.load(nvmlPath);
  const amd = koffi.load(amdPath);
  return {
    setNvmlLog: nv.func('void fake_nvml_set_log(const char *path)'),
    setNoEnergy: nv.func('void fake_nvml_set_no_energy(int on)'),
    setNoMemlock: nv.func('void fake_nvml_set_no_memlock(int on)'),
    setAmdLog: amd.func('void fake_amdsmi_set_log(const char *path)'),
  };
}

beforeEach(() => {
  log = path.join(tempDir('perseus-ffi-'), 'calls.log');
  const f = fakes();
  f.setNvmlLog(log);
  f.setAmdLog(log);
  f.setNoEnergy(0);
  f.setNoMemlock(0);
});

describe('NvmlBackend over the fake libnvidia-ml.so.1', () => {
  test('enumerates devices, clocks, PCI ids and power limits', async () => {
    const b = await NvmlBackend.open(nvmlPath);
    const [d0, d1] = b.devices();
    expect(b.devices()).toHaveLength(2);
    expect(d0).toMatchObject({
      index: 0,
      uuid: 'GPU-fa4e0000-0000-4000-8000-000000000000',
      pciBusId: '00000000:07:00.0',
      name: 'Fake NVIDIA A100-SXM4-40GB',
      supportedMemoryClocksMhz: [1215, 405],
      energyCounterAvailable: true,
      defaultPowerLimitW: 400,
      powerLimitRangeW: [100, 400],
    });
    expect(d0!.supportedSmClocksMhz).toHaveLength(81);
    expect(d0!.supportedSmClocksMhz.slice(0, 2)).toEqual([1410, 1395]);
    expect(d1!.pciBusId).toBe('00000000:08:00.0');
    // Graphics clocks are asked for at the highest memory clock.
    expect(calls()).toContain('nvmlDeviceGetSupportedGraphicsClocks 0 1215');
    await b.close();
  });

  test('locks, resets, power limit and energy through async FFI calls', async () => {
    const b = await NvmlBackend.open(nvmlPath);
    const lib = koffi.load(nvmlPath);
    const lockedMax = lib.func('uint32_t fake_nvml_locked_max(uint32_t i)');
    await b.lockSmClock(1, 1005);
    expect(lockedMax(1)).toBe(1005);
    expect(await b.readLockedSmClockMhz(1)).toBe(1005);
    await b.lockMemoryClockMax(1);
    await b.resetSmClock(1);
    await b.resetMemoryClock(1);
    expect(lockedMax(1)).toBe(0);
    await b.setPowerLimitW(0, 250);
    expect(await b.getPowerLimitW(0)).toBe(250);
    await b.resetPowerLimit(0);
    expect(await b.getPowerLimitW(0)).toBe(400);
    const e1 = await b.readEnergyMj(0);
    const e2 = await b.readEnergyMj(0);
    expect(e2 - e1).toBe(250);
    expect(await b.readPowerW(0)).toBe(250);
    await expect(b.lockSmClock(0, 1500)).rejects.toThrow(
      'nvmlDeviceSetGpuLockedClocks: NVML error 2 (Invalid Argument)',
    );
    expect(calls().filter((c) => !c.startsWith('nvmlDeviceGetSupportedGraphicsClocks'))).toEqual([
      'nvmlInit_v2',
      'nvmlDeviceSetGpuLockedClocks 1 1005 1005',
      'nvmlDeviceSetMemoryLockedClocks 1 1215 1215',
      'nvmlDeviceResetGpuLockedClocks 1',
      'nvmlDeviceResetMemoryLockedClocks 1',
      'nvmlDeviceSetPowerManagementLimit 0 250000',
      'nvmlDeviceSetPowerManagementLimit 0 400000',
      'nvmlDeviceSetGpuLockedClocks 0 1500 1500',
    ]);
    await b.close();
  });

  test('without an energy counter (pre-Volta) energy is integrated from power', async () => {
    fakes().setNoEnergy(1);
    const b = await NvmlBackend.open(nvmlPath);
    expect(b.devices()[0]!.energyCounterAvailable).toBe(false);
    const t0 = process.hrtime.bigint();
    await b.readEnergyMj(0);
    await new Promise((r) => setTimeout(r, 100));
    const e = await b.readEnergyMj(0);
    const dtS = Number(process.hrtime.bigint() - t0) / 1e9;
    // 250 W for ~0.1 s ≈ 25 J = 25,000 mJ (bounded by the measured interval).
    expect(e).toBeGreaterThan(250 * 0.09 * 1000);
    expect(e).toBeLessThanOrEqual(250 * dtS * 1000);
    await b.close();
  });

  test('the agent drives the fake NVML end to end: session clock, measurement, reset on stream end', async () => {
    const backend = await NvmlBackend.open(nvmlPath);
    const agent: RunningAgent = await startAgent({ backendInstance: backend });
    // The fake's clock grid is 1410 - 15k: 1000 MHz sits between 990 and 1005; nothing is applied.
    const bad = new SessionClient(agent.client);
    bad.open('job-n', 0);
    await bad.opened();
    bad.send({
      begin: {
        seq: 1,
        instruction: 'INSTRUCTION_KIND_FORWARD',
        frequency_mhz: 1000,
        t_ns: nowNs(),
      },
    });
    expect((await bad.error(1)).error?.violations?.[0]?.description).toBe(
      '1000 MHz is not a supported SM clock of device 0; nearest supported: 990, 1005 MHz',
    );
    const s = new SessionClient(agent.client);
    s.open('job-n', 1);
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
    const m = await s.measurement(1);
    expect(m.frequency_applied_mhz).toBe(1005);
    // The fake counter steps 250 mJ per read and the agent reads it around the Begin and the End:
    // the instruction gets a positive share, never more than the counter's total so far.
    expect(m.energy_j).toBeGreaterThan(0);
    expect(m.energy_j).toBeLessThan(
      (await call(agent.client, 'ReadEnergy', { device_index: 1 })).energy_j,
    );
    s.stream.end();
    await s.done;
    await until(() => calls().includes('nvmlDeviceResetMemoryLockedClocks 1'));
    const session = calls().filter(
      (c) => / 1( |$)/.test(c) && !c.startsWith('nvmlDeviceGetSupported'),
    );
    expect(session).toEqual([
      'nvmlDeviceResetGpuLockedClocks 1', // startup: no state file → every device reset
      'nvmlDeviceResetMemoryLockedClocks 1',
      'nvmlDeviceSetPowerManagementLimit 1 400000',
      'nvmlDeviceSetMemoryLockedClocks 1 1215 1215',
      'nvmlDeviceSetGpuLockedClocks 1 1005 1005',
      'nvmlDeviceResetGpuLockedClocks 1',
      'nvmlDeviceResetMemoryLockedClocks 1',
    ]);
    expect(calls().some((c) => c.startsWith('nvmlDeviceSetGpuLockedClocks 0'))).toBe(false);
    bad.stream.cancel();
    await agent.stop();
    expect(calls().at(-1)).toBe('nvmlShutdown');
  });
});

describe('NvmlBackend when the device cannot lock its memory clock (as seen on an H100 in a VM)', () => {
  test('resets count as clean, the lock is tried once, SM clocks still work', async () => {
    fakes().setNoMemlock(1);
    const backend = await NvmlBackend.open(nvmlPath);
    await expect(backend.lockMemoryClockMax(0)).rejects.toMatchObject({
      code: 3,
      unsupported: true,
    });
    await expect(backend.resetMemoryClock(0)).resolves.toBeUndefined();
    const agent: RunningAgent = await startAgent({ backendInstance: backend });
    const core = agent.module.core;
    for (const seq of [1, 2]) {
      const s = new SessionClient(agent.client);
      s.open('job-m', 1);
      await s.opened();
      s.send({
        begin: { seq, instruction: 'INSTRUCTION_KIND_FORWARD', frequency_mhz: 1005, t_ns: nowNs() },
      });
      s.send({ end: { seq, t_ns: nowNs() } });
      expect((await s.measurement(seq)).frequency_applied_mhz).toBe(1005);
      s.stream.end();
      await s.done;
      await until(
        () => calls().filter((c) => c === 'nvmlDeviceResetGpuLockedClocks 1').length === seq + 1,
      );
    }
    // Startup reset and both stream-end resets succeeded; the unsupported lock is no driver error.
    expect(core.stats.driverErrors).toBe(0);
    const dev1 = calls().filter(
      (c) => / 1( |$)/.test(c) && !c.startsWith('nvmlDeviceGetSupported'),
    );
    expect(dev1.filter((c) => c.startsWith('nvmlDeviceSetMemoryLockedClocks'))).toEqual([
      'nvmlDeviceSetMemoryLockedClocks 1 1215 1215',
    ]);
    expect(dev1.filter((c) => c.startsWith('nvmlDeviceSetGpuLockedClocks'))).toEqual([
      'nvmlDeviceSetGpuLockedClocks 1 1005 1005',
      'nvmlDeviceSetGpuLockedClocks 1 1005 1005',
    ]);
    await agent.stop();
  });
});

describe('AmdSmiBackend over the fake libamd_smi.so', () => {
  test('enumerates, locks as a min=max range, resets via perf level auto (no per-domain reset)', async () => {
    const b = await AmdSmiBackend.open(amdPath);
    expect(b.devices()).toHaveLength(2);
    expect(b.devices()[1]).toMatchObject({
      index: 1,
      uuid: 'a3ff74a1-0000-1000-8001-000000000000',
      pciBusId: '00000000:c2:00.0',
      supportedSmClocksMhz: [2100, 1200, 500],
      supportedMemoryClocksMhz: [],
      defaultPowerLimitW: 300,
      powerLimitRangeW: [100, 300],
    });
    const lib = koffi.load(amdPath);
    const sclkMax = lib.func('uint64_t fake_amdsmi_sclk_max(uint32_t i)');
    const perf = lib.func('int fake_amdsmi_perf_level(uint32_t i)');
    await b.lockSmClock(0, 1200);
    expect(Number(sclkMax(0))).toBe(1200);
    expect(perf(0)).toBe(1);
    await b.lockMemoryClockMax(0); // degraded: no call
    await b.resetSmClock(0);
    expect(perf(0)).toBe(0);
    const e1 = await b.readEnergyMj(0);
    const e2 = await b.readEnergyMj(0);
    expect(e2 - e1).toBeCloseTo((65536 * 15.259) / 1000, 1);
    await b.setPowerLimitW(1, 200);
    expect(await b.getPowerLimitW(1)).toBe(200);
    await b.close();
    expect(calls()).toEqual([
      'amdsmi_init 2',
      'amdsmi_set_gpu_clk_range 0 1200 1200 0',
      'amdsmi_set_gpu_perf_level 0 0',
      'amdsmi_set_power_cap 1 200000000',
      'amdsmi_shut_down',
    ]);
  });
});

test('auto picks NVML when its library loads with devices', async () => {
  const b = await createBackend(
    {
      backend: 'auto',
      nvmlLibrary: nvmlPath,
      amdsmiLibrary: amdPath,
      simulatedModel: 'a100-sxm',
      simulatedDevices: 1,
      simulatedDriverLatencyMs: 0,
      profileDir: '/nonexistent',
    },
    new StateFile(path.join(tempDir(), 's.json')),
    createLogger('t', 'silent'),
  );
  expect(b.kind).toBe('nvml');
  await b.close();
  const fallback = await createBackend(
    {
      backend: 'auto',
      nvmlLibrary: '/nonexistent/libnvidia-ml.so.1',
      amdsmiLibrary: '/nonexistent/libamd_smi.so',
      // A host root without GPU device nodes: only there may auto fall back to simulated GPUs.
      deviceRoot: tempDir('perseus-no-gpu-'),
      simulatedModel: 'a40',
      simulatedDevices: 1,
      simulatedDriverLatencyMs: 0,
      profileDir: '/nonexistent',
    },
    new StateFile(path.join(tempDir(), 's.json')),
    createLogger('t', 'silent'),
  );
  expect(fallback.kind).toBe('simulated');
  expect(fallback.devices()[0]!.name).toBe('Simulated NVIDIA A40');
});
