/**
 * The agent's Prometheus metrics (names in the package README): per-device clock, energy, lease and
 * queue state, lifetime counters, and event-to-apply latency summaries. Registered on the process's
 * registry (service-kit) and read from the core at scrape time.
 */
import type { MetricsRegistry, Sample } from '@perseus/service-kit';
import { createMetricsRegistry, observedMetric, observedSummary } from '@perseus/service-kit';
import type { GpuAgentCore } from './agent';

type DeviceView = ReturnType<GpuAgentCore['metricsSnapshot']>[number];

/**
 * Registers every agent metric on `registry`. Per-device metrics and the measurement counter carry
 * `simulated="true"` for simulated GPUs (their energy is emulated), `"false"` for real ones.
 */
export function registerAgentMetrics(registry: MetricsRegistry, core: GpuAgentCore): void {
  const simulated = String(core.backend.kind === 'simulated');
  const labels = (d: DeviceView) => ({ device: d.index, uuid: d.uuid, simulated });
  const perDevice = (
    name: string,
    help: string,
    value: (d: DeviceView) => number,
    type: 'gauge' | 'counter' = 'gauge',
  ): void =>
    observedMetric(registry, {
      name,
      help,
      type,
      labelNames: ['device', 'uuid', 'simulated'],
      read: (): Sample => core.metricsSnapshot().map((d) => [labels(d), value(d)] as const),
    });
  // Energy is refreshed from the devices once per scrape, before the energy counter is read.
  observedMetric(registry, {
    name: 'perseus_agent_energy_joules_total',
    help: 'Cumulative energy counter of the device, joules.',
    type: 'counter',
    labelNames: ['device', 'uuid', 'simulated'],
    read: async (): Promise<Sample> => {
      await core.refreshEnergy();
      return core.metricsSnapshot().map((d) => [labels(d), d.energyJ]);
    },
  });
  perDevice(
    'perseus_agent_sm_clock_locked_hertz',
    'SM clock the agent has locked, hertz (0 = default clocks).',
    (d) => d.lockedSmClockMhz * 1e6,
  );
  perDevice('perseus_agent_lease_active', '1 while a session holds the device lease.', (d) =>
    d.leased ? 1 : 0,
  );
  perDevice(
    'perseus_agent_driver_queue_depth',
    'Driver operations queued on the device worker.',
    (d) => d.queueDepth,
  );
  perDevice(
    'perseus_agent_session_clock_changes',
    'Clock changes applied in the current session.',
    (d) => d.clockChanges,
  );
  const s = core.stats;
  const counter = (name: string, help: string, read: () => number): void =>
    observedMetric(registry, { name, help, type: 'counter', read });
  counter('perseus_agent_sessions_opened_total', 'Leases granted.', () => s.sessionsOpened);
  counter(
    'perseus_agent_sessions_denied_total',
    'Lease claims refused (device held).',
    () => s.sessionsDenied,
  );
  counter('perseus_agent_lease_expiries_total', 'Leases ended by TTL.', () => s.leaseExpiries);
  counter(
    'perseus_agent_device_resets_total',
    'Device resets (lease end, startup, shutdown).',
    () => s.resets,
  );
  counter('perseus_agent_driver_errors_total', 'Driver calls that failed.', () => s.driverErrors);
  observedMetric(registry, {
    name: 'perseus_agent_measurements_total',
    help: 'Measurements sent (simulated="true": emulated energy).',
    type: 'counter',
    labelNames: ['simulated'],
    read: (): Sample => [[{ simulated }, s.measurements]],
  });
  counter(
    'perseus_agent_session_event_errors_total',
    'Session events rejected.',
    () => s.eventErrors,
  );
  observedMetric(registry, {
    name: 'perseus_agent_sessions_active',
    help: 'Open sessions.',
    read: () => core.sessionCount,
  });
  observedSummary(registry, {
    name: 'perseus_agent_event_to_apply_seconds',
    help: 'Client Begin timestamp to clock applied (same-host clients), over the last 16384 events.',
    read: () => s.eventToApply,
  });
  observedSummary(registry, {
    name: 'perseus_agent_receive_to_apply_seconds',
    help: 'Agent received a Begin to clock applied (queue + driver call), over the last 16384 events.',
    read: () => s.receiveToApply,
  });
  observedSummary(registry, {
    name: 'perseus_agent_event_to_receive_seconds',
    help: 'Client Begin timestamp to the agent receiving it (transport share), over the last 16384 events.',
    read: () => s.eventToReceive,
  });
}

/** The text exposition of the agent's metrics alone (tests, one-off dumps). */
export async function renderMetrics(core: GpuAgentCore): Promise<string> {
  const registry = createMetricsRegistry();
  registerAgentMetrics(registry, core);
  return registry.metrics();
}
