import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';

/** Repository root and the `perseus` launcher the CLI tests run. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..');
export const BIN = path.join(REPO_ROOT, 'bin', 'perseus');

export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

/** A `perseus serve …` child that printed its `serving` line. */
export interface ServedProcess {
  child: ChildProcessWithoutNullStreams;
  address: string;
  /** Address of the last `{"event":"metrics"}` line before serving, if any. */
  metrics?: string;
  exited: Promise<ExitStatus>;
  /** SIGTERM, then the exit status. */
  stop(): Promise<ExitStatus>;
}

/**
 * Runs `bin/perseus <args>` (a `serve` command) on 127.0.0.1:0 with logging off unless `args`
 * say otherwise, and resolves once it prints `{"event":"serving","address":…}`.
 */
export function startServeProcess(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 30_000,
): Promise<ServedProcess> {
  const extra = [
    ...(args.includes('--listen') ? [] : ['--listen', '127.0.0.1:0']),
    ...(args.includes('--log-level') ? [] : ['--log-level', 'silent']),
  ];
  const child = spawn(BIN, [...args, ...extra], { env: { ...process.env, ...env } });
  const exited = new Promise<ExitStatus>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const stop = (): Promise<ExitStatus> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    return exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`perseus ${args.join(' ')} did not start`)),
      timeoutMs,
    );
    let metrics: string | undefined;
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let msg: { event?: string; address?: string };
      try {
        msg = JSON.parse(line) as { event?: string; address?: string };
      } catch {
        return; // not a JSON line
      }
      if (msg.event === 'metrics') metrics = msg.address;
      if (msg.event === 'serving' && msg.address) {
        clearTimeout(timer);
        resolve({ child, address: msg.address, ...(metrics ? { metrics } : {}), exited, stop });
      }
    });
    void exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`perseus ${args.join(' ')} exited early: ${JSON.stringify(e)}`));
    });
  });
}
