import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'perseus');

function startServe(
  args: string[],
): Promise<{ child: ChildProcessWithoutNullStreams; address: string }> {
  const child = spawn(BIN, ['serve', ...args, '--listen', '127.0.0.1:0', '--log-level', 'silent'], {
    env: { ...process.env, PERSEUS_AGENT_BACKEND: 'simulated' },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('serve did not start')), 30_000);
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { event?: string; address?: string };
        if (msg.event === 'serving' && msg.address) {
          clearTimeout(timer);
          resolve({ child, address: msg.address });
        }
      } catch {
        // not a JSON line
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited early with ${code}`)));
  });
}

function exitOf(
  child: ChildProcessWithoutNullStreams,
): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
}

describe('perseus serve lifecycle', () => {
  it('serves all three services, answers status, and exits 0 on SIGTERM', async () => {
    const { child, address } = await startServe([]);
    const exited = exitOf(child);
    try {
      const status = spawnSync(BIN, ['status', '--server', address, '--timeout-s', '10'], {
        encoding: 'utf8',
      });
      expect(status.status).toBe(0);
      expect(status.stdout).toBe(`server ${address}: reachable\n`);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toEqual({ code: 0, signal: null });
  });

  it('status fails with exit code 1 when nothing listens', () => {
    const status = spawnSync(BIN, ['status', '--server', '127.0.0.1:1', '--timeout-s', '1'], {
      encoding: 'utf8',
    });
    expect(status.status).toBe(1);
    expect(status.stderr).toMatch(/^perseus status: /);
  });

  it('rejects a malformed listen address with a clear error', () => {
    const r = spawnSync(BIN, ['serve', 'profiler', '--listen', 'not an address'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      'listen address must be host:port or unix:/path, got "not an address"',
    );
  });
});
