import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { status } from '@grpc/grpc-js';
import {
  NotFoundError,
  PERSEUS_VERSION,
  ValidationError,
  createLogger,
  createMetricsRegistry,
  observedMetric,
  observedSummary,
  startMetricsServer,
  toStreamError,
} from '../src';

function get(url: string): Promise<{ code: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () =>
          resolve({
            code: res.statusCode ?? 0,
            body,
            type: String(res.headers['content-type']),
          }),
        );
      })
      .on('error', reject);
  });
}

describe('metrics', () => {
  it('every registry carries perseus_build_info with the suite version', async () => {
    const version = (
      JSON.parse(
        fs.readFileSync(path.join(__dirname, '..', '..', 'cli', 'package.json'), 'utf8'),
      ) as { version: string }
    ).version;
    expect(PERSEUS_VERSION).toBe(version);
    const text = await createMetricsRegistry().metrics();
    expect(text).toContain('# TYPE perseus_build_info gauge');
    expect(text).toContain(`perseus_build_info{version="${version}",node="${process.version}"} 1`);
  });

  it('reads gauges, labelled counters and window summaries at scrape time', async () => {
    const registry = createMetricsRegistry();
    let jobs = 1;
    observedMetric(registry, { name: 't_jobs', help: 'Jobs.', read: () => jobs });
    observedMetric(registry, {
      name: 't_batches_total',
      help: 'Batches.',
      type: 'counter',
      labelNames: ['result'],
      read: () => [
        [{ result: 'stored' }, 7],
        [{ result: 'a"b\\c\nd' }, 1],
      ],
    });
    observedSummary(registry, {
      name: 't_latency_seconds',
      help: 'Latency.',
      read: () => ({ quantile: (q) => q * 2, sumS: 3, count: 4 }),
    });
    jobs = 5;
    const text = await registry.metrics();
    expect(text).toContain('# TYPE t_jobs gauge\nt_jobs 5');
    expect(text).toContain('t_batches_total{result="stored"} 7');
    // Label values are escaped (the hand-written writers had drifted here).
    expect(text).toContain('t_batches_total{result="a\\"b\\\\c\\nd"} 1');
    expect(text).toContain('# TYPE t_latency_seconds summary');
    expect(text).toContain('t_latency_seconds{quantile="0.99"} 1.98');
    expect(text).toContain('t_latency_seconds_sum 3');
    expect(text).toContain('t_latency_seconds_count 4');
  });

  it('adds the process metrics only to a process registry', async () => {
    expect(await createMetricsRegistry().metrics()).not.toContain('process_cpu');
    const proc = createMetricsRegistry({ processMetrics: true });
    expect(await proc.metrics()).toContain('process_cpu_seconds_total');
  });

  it('serves /metrics and 404 elsewhere; rejects a bad listen address', async () => {
    const registry = createMetricsRegistry();
    observedMetric(registry, { name: 't_up', help: 'Up.', read: () => 1 });
    const logger = createLogger('t', 'silent');
    const server = await startMetricsServer('127.0.0.1:0', registry, logger);
    try {
      const ok = await get(`http://${server.address}/metrics`);
      expect(ok.code).toBe(200);
      expect(ok.type).toContain('text/plain; version=0.0.4');
      expect(ok.body).toContain('t_up 1');
      expect((await get(`http://${server.address}/other`)).code).toBe(404);
    } finally {
      await server.close();
    }
    await expect(startMetricsServer('nohost', registry, logger)).rejects.toThrow(/host:port/);
  });
});

describe('toStreamError', () => {
  const logger = createLogger('t', 'silent');
  it('keeps the status and (capped) violations of domain errors, hides internals', () => {
    const v = toStreamError(ValidationError.field('time_s', 'must be > 0'), logger, 'x');
    expect(v).toEqual({
      code: status.INVALID_ARGUMENT,
      message: 'time_s: must be > 0',
      violations: [{ field: 'time_s', description: 'must be > 0' }],
    });
    expect(toStreamError(new NotFoundError('no job j'), logger, 'x')).toEqual({
      code: status.NOT_FOUND,
      message: 'no job j',
      violations: [],
    });
    expect(toStreamError(new Error('secret path /x'), logger, 'x')).toEqual({
      code: status.INTERNAL,
      message: 'internal error',
      violations: [],
    });
  });
});
