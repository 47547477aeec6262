import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GpuAgentCore } from './agent';

function line(name: string, labels: Record<string, string | number>, value: number): string {
  const l = Object.entries(labels)
    .map(([k, v]) => `${k}="${String(v).replace(/["\\\n]/g, '_')}"`)
    .join(',');
  return `${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 'NaN'}`;
}

/** Prometheus text exposition (version 0.0.4) of the agent's state. */
export async function renderMetrics(core: GpuAgentCore): Promise<string> {
  await core.refreshEnergy();
  const out: string[] = [];
  const devs = core.metricsSnapshot();
  const gauge = (
    name: string,
    help: string,
    type: 'gauge' | 'counter',
    rows: Array<[Record<string, string | number>, number]>,
  ): void => {
    out.push(
      `# HELP ${name} ${help}`,
      `# TYPE ${name} ${type}`,
      ...rows.map(([l, v]) => line(name, l, v)),
    );
  };
  const dl = (d: { index: number; uuid: string }): Record<string, string | number> => ({
    device: d.index,
    uuid: d.uuid,
  });
  gauge(
    'perseus_agent_sm_clock_locked_mhz',
    'SM clock the agent has locked, MHz (0 = default clocks).',
    'gauge',
    devs.map((d) => [dl(d), d.lockedSmClockMhz]),
  );
  gauge(
    'perseus_agent_energy_joules_total',
    'Cumulative energy counter of the device, joules.',
    'counter',
    devs.map((d) => [dl(d), d.energyJ]),
  );
  gauge(
    'perseus_agent_lease_active',
    '1 while a session holds the device lease.',
    'gauge',
    devs.map((d) => [dl(d), d.leased ? 1 : 0]),
  );
  gauge(
    'perseus_agent_driver_queue_depth',
    'Driver operations queued on the device worker.',
    'gauge',
    devs.map((d) => [dl(d), d.queueDepth]),
  );
  gauge(
    'perseus_agent_session_clock_changes',
    'Clock changes applied in the current session.',
    'gauge',
    devs.map((d) => [dl(d), d.clockChanges]),
  );
  const s = core.stats;
  gauge('perseus_agent_sessions_opened_total', 'Leases granted.', 'counter', [
    [{}, s.sessionsOpened],
  ]);
  gauge('perseus_agent_sessions_denied_total', 'Lease claims refused (device held).', 'counter', [
    [{}, s.sessionsDenied],
  ]);
  gauge('perseus_agent_lease_expiries_total', 'Leases ended by TTL.', 'counter', [
    [{}, s.leaseExpiries],
  ]);
  gauge(
    'perseus_agent_device_resets_total',
    'Device resets (lease end, startup, shutdown).',
    'counter',
    [[{}, s.resets]],
  );
  gauge('perseus_agent_driver_errors_total', 'Driver calls that failed.', 'counter', [
    [{}, s.driverErrors],
  ]);
  gauge('perseus_agent_measurements_total', 'Measurements sent.', 'counter', [
    [{}, s.measurements],
  ]);
  gauge('perseus_agent_session_event_errors_total', 'Session events rejected.', 'counter', [
    [{}, s.eventErrors],
  ]);
  gauge('perseus_agent_sessions_active', 'Open sessions.', 'gauge', [[{}, core.sessionCount]]);
  const summary = (name: string, help: string, w: typeof s.eventToApply): void => {
    out.push(
      `# HELP ${name} ${help}`,
      `# TYPE ${name} summary`,
      line(name, { quantile: '0.5' }, w.quantile(0.5)),
      line(name, { quantile: '0.99' }, w.quantile(0.99)),
      line(name, { quantile: '1' }, w.quantile(1)),
      line(`${name}_sum`, {}, w.sumS),
      line(`${name}_count`, {}, w.count),
    );
  };
  summary(
    'perseus_agent_event_to_apply_seconds',
    'Client Begin timestamp to clock applied (same-host clients), over the last 16384 events.',
    s.eventToApply,
  );
  summary(
    'perseus_agent_receive_to_apply_seconds',
    'Agent received a Begin to clock applied (queue + driver call), over the last 16384 events.',
    s.receiveToApply,
  );
  summary(
    'perseus_agent_event_to_receive_seconds',
    'Client Begin timestamp to the agent receiving it (transport share), over the last 16384 events.',
    s.eventToReceive,
  );
  return `${out.join('\n')}\n`;
}

/** Serves GET /metrics on `host:port`; resolves with the bound address. */
export async function startMetricsServer(
  core: GpuAgentCore,
  listen: string,
): Promise<{ address: string; close(): Promise<void> }> {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d+)$/.exec(listen);
  if (!m)
    throw new Error(`metrics listen address must be host:port, got ${JSON.stringify(listen)}`);
  const host = m[1]!.replace(/^\[|\]$/g, '');
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    renderMetrics(core).then(
      (body) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('error\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
