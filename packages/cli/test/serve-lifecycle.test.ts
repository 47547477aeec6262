import { spawnSync } from 'node:child_process';
import { BIN, startServeProcess } from './support/serve-process';

describe('perseus serve lifecycle', () => {
  it('serves all three services, answers status, and exits 0 on SIGTERM', async () => {
    const { address, stop } = await startServeProcess(['serve'], {
      PERSEUS_AGENT_BACKEND: 'simulated',
    });
    let exited;
    try {
      const status = spawnSync(BIN, ['status', '--server', address, '--timeout-s', '10'], {
        encoding: 'utf8',
      });
      expect(status.status).toBe(0);
      expect(status.stdout).toBe(`server ${address}: reachable\n`);
    } finally {
      exited = await stop();
    }
    expect(exited).toEqual({ code: 0, signal: null });
  });

  it('status fails with exit code 1 when nothing listens', () => {
    const status = spawnSync(BIN, ['status', '--server', '127.0.0.1:1', '--timeout-s', '1'], {
      encoding: 'utf8',
    });
    expect(status.status).toBe(1);
    expect(status.stderr).toMatch(/^perseus status: cannot reach the optimizer at 127\.0\.0\.1:1 /);
  });

  it('names the GPU library it could not load', () => {
    const lib = '/nonexistent/perseus-test/libnvidia-ml.so.1';
    const r = spawnSync(
      BIN,
      [
        'serve',
        'agent',
        '--agent-backend',
        'nvml',
        '--agent-nvml-library',
        lib,
        '--listen',
        '127.0.0.1:0',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `--agent-backend nvml: cannot load the NVML library ${lib} (--agent-nvml-library)`,
    );
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

  it('refuses the profiler and the optimizer on a non-local address without TLS (issue 13)', () => {
    for (const role of ['profiler', 'optimizer']) {
      const r = spawnSync(BIN, ['serve', role, '--listen', '0.0.0.0:0'], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`refusing to serve ${role} on 0.0.0.0:0 without TLS`);
    }
  });
});
