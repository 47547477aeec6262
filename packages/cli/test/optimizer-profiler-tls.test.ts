import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GrpcProfileSource } from '@perseus/optimizer';
import { startServeProcess, type ServedProcess } from './support/serve-process';

// The optimizer's link to a profiler that serves TLS and wants a token (a split deployment on a
// non-local address): before, the optimizer always dialled plaintext without a token, so it could
// never register a job there nor read a profile.
describe('optimizer → profiler over TLS with a token', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-opt-prof-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const tokens = path.join(dir, 'tokens');
  const secret = 'optimizer-secret-0123456789abcdef';
  let profiler: ServedProcess;
  const sources: GrpcProfileSource[] = [];
  const job = {
    jobId: 'tls-job',
    pipeline: { schedule: '1f1b' as const, numStages: 2, numMicrobatches: 4 },
    dpDegree: 1,
    tpDegree: 1,
    supportedFrequenciesMhz: [1410, 1200],
  };

  beforeAll(async () => {
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
    fs.writeFileSync(tokens, `optimizer read,report ${secret}\n`, { mode: 0o600 });
    profiler = await startServeProcess([
      'serve',
      'profiler',
      '--profiler-data-dir',
      ':memory:',
      '--tls-cert',
      cert,
      '--tls-key',
      key,
      '--profiler-token-file',
      tokens,
    ]);
  });

  afterAll(async () => {
    for (const s of sources) s.close();
    await profiler.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const source = (link: ConstructorParameters<typeof GrpcProfileSource>[2]): GrpcProfileSource => {
    const s = new GrpcProfileSource(profiler.address, 10_000, link);
    sources.push(s);
    return s;
  };

  it('registers a job and reads its coverage with the CA and the token', async () => {
    const s = source({ tlsCaPem: fs.readFileSync(cert), token: secret });
    await s.registerJob(job);
    const coverage = await s.getCoverage('tls-job');
    expect(coverage).toBeDefined();
    expect(await s.getProfile('tls-job')).toEqual([]);
  });

  it('is refused without the token, and cannot connect in plaintext', async () => {
    await expect(
      source({ tlsCaPem: fs.readFileSync(cert) }).registerJob(job),
    ).rejects.toMatchObject(
      { code: 16 }, // UNAUTHENTICATED
    );
    await expect(source({ token: secret }).registerJob(job)).rejects.toMatchObject({
      code: 14, // UNAVAILABLE: a TLS listener does not speak plaintext
    });
  });
});
