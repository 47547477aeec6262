import * as fs from 'node:fs';
import * as path from 'node:path';
import { createLogger } from '@perseus/service-kit';
import type { AgentModuleOptions } from '../src';
import { createAgentModule, readStateFile } from '../src';
import { call, startAgent, tempDir } from './helpers';

/**
 * Issue 12: the agent never passes simulated GPUs off as real ones, and a start that fails says
 * why and leaves nothing behind (no lock, a clean or untouched state file).
 */

function start(dir: string, opts: Partial<AgentModuleOptions>) {
  return createAgentModule({
    logger: createLogger('startup', 'silent'),
    simulatedDevices: 1,
    stateFile: path.join(dir, 'state.json'),
    listenAddress: `unix:${path.join(dir, 'a.sock')}`,
    env: {},
    ...opts,
  });
}

/** A fake host root with the given device nodes (and render-node vendors under sys/). */
function hostRoot(nodes: string[], renderVendors: Record<string, string> = {}): string {
  const root = tempDir('perseus-root-');
  for (const n of nodes) {
    fs.mkdirSync(path.dirname(path.join(root, n)), { recursive: true });
    fs.writeFileSync(path.join(root, n), '');
  }
  for (const [node, vendor] of Object.entries(renderVendors)) {
    const dev = path.join(root, 'sys', 'class', 'drm', node, 'device');
    fs.mkdirSync(dev, { recursive: true });
    fs.writeFileSync(path.join(dev, 'vendor'), `${vendor}\n`);
  }
  return root;
}

test('auto on a host with NVIDIA device nodes but no loadable NVML refuses to start, naming the library', async () => {
  const dir = tempDir();
  const lib = path.join(dir, 'missing', 'libnvidia-ml.so.1');
  await expect(
    start(dir, {
      backend: 'auto',
      deviceRoot: hostRoot(['dev/nvidia0', 'dev/nvidiactl']),
      nvmlLibrary: lib,
      amdsmiLibrary: path.join(dir, 'missing', 'libamd_smi.so'),
    }),
  ).rejects.toThrow(
    new RegExp(
      `GPU device nodes \\(.*/dev/nvidia0\\) but no GPU management library works: NVML library "${lib.replace(/[.]/g, '\\.')}" failed: `,
    ),
  );
  // Nothing left behind: no state file written, and the lock is free for the next start.
  expect(fs.existsSync(path.join(dir, 'state.json'))).toBe(false);
  const sim = await start(dir, { backend: 'simulated' });
  await sim.close();
});

test('auto with an AMD render node (sysfs vendor 0x1002) and no AMD SMI refuses; another vendor does not count', async () => {
  const dir = tempDir();
  const missing = (n: string) => path.join(dir, 'missing', n);
  const libs = {
    nvmlLibrary: missing('libnvidia-ml.so.1'),
    amdsmiLibrary: missing('libamd_smi.so'),
  };
  await expect(
    start(dir, {
      backend: 'auto',
      deviceRoot: hostRoot(['dev/dri/renderD128'], { renderD128: '0x1002' }),
      ...libs,
    }),
  ).rejects.toThrow(/dev\/dri\/renderD128\) but no GPU management library works: AMD SMI library/);
  // A virtio render node (vendor 0x1af4) is no GPU the agent controls: simulated, said so.
  const mod = await start(dir, {
    backend: 'auto',
    deviceRoot: hostRoot(['dev/dri/renderD128'], { renderD128: '0x1af4' }),
    ...libs,
  });
  expect(mod.core.backend.kind).toBe('simulated');
  await mod.close();
});

test('an explicit nvml backend without a driver names the library it failed to load', async () => {
  const dir = tempDir();
  await expect(
    start(dir, { backend: 'nvml', nvmlLibrary: 'libnvidia-ml-absent.so.1' }),
  ).rejects.toThrow(/^NVML library "libnvidia-ml-absent\.so\.1" failed: /);
});

test('ListDevices says a simulated device is simulated', async () => {
  const agent = await startAgent();
  const res = await call(agent.client, 'ListDevices', {});
  expect(res.devices.map((d) => [d.backend, d.simulated])).toEqual([
    ['BACKEND_SIMULATED', true],
    ['BACKEND_SIMULATED', true],
  ]);
  await agent.stop();
});

test("the agent creates its socket's missing directory", async () => {
  const dir = tempDir();
  const agent = await startAgent({}, dir, undefined, path.join(dir, 'run', 'perseus', 'a.sock'));
  expect(fs.statSync(path.join(dir, 'run', 'perseus')).mode & 0o777).toBe(0o750);
  expect((await call(agent.client, 'ListDevices', {})).devices).toHaveLength(2);
  await agent.stop();
});

test('a socket directory that cannot be created is named with the reason; the state file stays clean', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'not-a-dir'), '');
  const p = start(dir, {
    backend: 'simulated',
    listenAddress: `unix:${path.join(dir, 'not-a-dir', 'sub', 'a.sock')}`,
  });
  await expect(p).rejects.toThrow(
    `the agent socket's directory ${path.join(dir, 'not-a-dir', 'sub')} does not exist and cannot be created (ENOTDIR)`,
  );
  const st = readStateFile(path.join(dir, 'state.json'));
  expect(st === undefined || st.cleanShutdown).toBe(true);
  const again = await start(dir, { backend: 'simulated' });
  await again.close();
  expect(readStateFile(path.join(dir, 'state.json'))!.cleanShutdown).toBe(true);
});
