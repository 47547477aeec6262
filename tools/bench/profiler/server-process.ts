/**
 * Starts `bin/perseus serve profiler` as a child process for the profiler benchmarks and reads the
 * addresses it prints ({"event":"serving"} and {"event":"metrics"}).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

export interface ProfilerProcess {
  proc: ChildProcess;
  address: string;
  metricsAddress: string;
  /** Resident set size of the server process, bytes (Linux /proc). */
  rssBytes(): number;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startProfilerProcess(
  dataDir: string,
  extraArgs: string[] = [],
  timeoutMs = 60_000,
  /** Checkout whose `bin/perseus` to run (a baseline worktree). Default: this repository. */
  root = REPO_ROOT,
): Promise<ProfilerProcess> {
  const proc = spawn(
    path.join(root, 'bin', 'perseus'),
    [
      'serve',
      'profiler',
      '--listen',
      '127.0.0.1:0',
      '--profiler-data-dir',
      dataDir,
      '--profiler-metrics-listen',
      '127.0.0.1:0',
      '--log-level',
      'warn',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code) => resolve(code)),
  );
  const found: Record<string, string> = {};
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('profiler did not start in time')), timeoutMs);
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const msg = JSON.parse(line) as { event?: string; address?: string };
          if (msg.event && msg.address) found[msg.event] = msg.address;
        } catch {
          // not a JSON line
        }
        if (found['serving'] && found['metrics']) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`profiler exited with ${code} before serving`));
    });
  });
  return {
    proc,
    address: found['serving']!,
    metricsAddress: found['metrics']!,
    rssBytes: () => {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
        return m ? Number(m[1]) * 1024 : 0;
      } catch {
        return 0;
      }
    },
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** Reads one metric (first sample) from the Prometheus endpoint. */
export function scrapeMetric(metricsAddress: string, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://${metricsAddress}/metrics`, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => {
          const line = text
            .split('\n')
            .find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
          if (!line) reject(new Error(`metric ${name} not found`));
          else resolve(Number(line.slice(line.lastIndexOf(' ') + 1)));
        });
      })
      .on('error', reject);
  });
}
