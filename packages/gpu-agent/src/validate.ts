import type { agentV1 } from '@perseus/proto';
import type { RankIdentity } from '@perseus/service-kit';
import { Checker, checkRankIdentity } from '@perseus/service-kit';
import type { DeviceInfo } from './backend';
import { nearestClocks } from './backend';

/**
 * One validator per request message of perseus.agent.v1.GpuAgent. Each turns the loose wire message
 * into a strict internal value or throws a ValidationError naming every bad field with its value.
 * Validators that take `devices` also check device indices and clocks against this node.
 */

export type InstructionName = 'forward' | 'backward';

/** Position of a rank in the 3D-parallel layout (the one type, from service-kit). */
export type RankIdentityValue = RankIdentity;

export interface OpenSessionValue {
  jobId: string;
  rank: RankIdentityValue;
  deviceIndex: number;
  /** 0 = agent default. */
  leaseTtlS: number;
}

export interface BeginValue {
  seq: number;
  instruction: InstructionName;
  microbatch: number;
  /** 0 = default clocks. */
  frequencyMhz: number;
  tNs: bigint;
}

export interface EndValue {
  seq: number;
  tNs: bigint;
}

export type SessionEventValue =
  | { kind: 'open'; open: OpenSessionValue }
  | { kind: 'begin'; begin: BeginValue }
  | { kind: 'end'; end: EndValue }
  | { kind: 'heartbeat' };

export interface SetClocksValue {
  leaseId: string;
  deviceIndex: number;
  smClockMhz: number;
}

export interface ResetClocksValue {
  leaseId: string;
  deviceIndex: number;
}

export interface ReadEnergyValue {
  deviceIndex: number;
}

const INSTRUCTIONS: Readonly<Record<string, InstructionName>> = {
  INSTRUCTION_KIND_FORWARD: 'forward',
  INSTRUCTION_KIND_BACKWARD: 'backward',
};

/** Lease ids are what the agent issues (UUIDs); anything else is refused before a lookup. */
const LEASE_ID_PATTERN = /^[A-Za-z0-9-]{1,64}$/;

/** Longest lease TTL a client may ask for; the agent caps further by its own maximum. */
export const MAX_REQUESTED_LEASE_TTL_S = 86_400;

function deviceIndex(
  c: Checker,
  field: string,
  value: number | null | undefined,
  devices: readonly DeviceInfo[] | undefined,
): number {
  const v = c.uint(field, value);
  if (
    devices !== undefined &&
    Number.isInteger(v) &&
    v >= 0 &&
    !devices.some((d) => d.index === v)
  ) {
    c.fail(
      field,
      `no device ${v} on this node (it has ${devices.length}: ${devices.length === 0 ? 'none' : `0-${devices.length - 1}`})`,
    );
  }
  return v;
}

function smClock(
  c: Checker,
  field: string,
  value: number | null | undefined,
  device: DeviceInfo | undefined,
  opts: { allowZero: boolean },
): number {
  const v = c.uint(field, value, { min: opts.allowZero ? 0 : 1 });
  if (
    device !== undefined &&
    Number.isInteger(v) &&
    v > 0 &&
    !device.supportedSmClocksMhz.includes(v)
  ) {
    const near = nearestClocks(device.supportedSmClocksMhz, v);
    c.fail(
      field,
      `${v} MHz is not a supported SM clock of device ${device.index}; nearest supported: ${near.join(', ')} MHz`,
    );
  }
  return v;
}

export function validateListDevices(
  _req: agentV1.ListDevicesRequest__Output | null | undefined,
): Record<string, never> {
  return {};
}

/** The `open` message (fields prefixed `open.`). */
export function validateOpenSession(
  open: agentV1.OpenSession__Output | null | undefined,
  devices?: readonly DeviceInfo[],
): OpenSessionValue {
  const root = new Checker();
  if (!root.present('open', open)) {
    root.done();
    throw new Error('unreachable');
  }
  const c = root.at('open');
  const value: OpenSessionValue = {
    jobId: c.id('job_id', open.job_id),
    rank: checkRankIdentity(c, 'rank', open.rank),
    deviceIndex: deviceIndex(c, 'device_index', open.device_index, devices),
    leaseTtlS: c.number('lease_ttl_s', open.lease_ttl_s, {
      min: 0,
      max: MAX_REQUESTED_LEASE_TTL_S,
    }),
  };
  root.done();
  return value;
}

/** A `begin` event; `device` (the leased one) checks the clock. Fields prefixed `begin.`. */
export function validateBegin(
  begin: agentV1.Begin__Output | null | undefined,
  device?: DeviceInfo,
): BeginValue {
  const root = new Checker();
  if (!root.present('begin', begin)) {
    root.done();
    throw new Error('unreachable');
  }
  const c = root.at('begin');
  const seq = c.uint64('seq', begin.seq, { min: 1 });
  const instruction = c.enumValue('instruction', begin.instruction, INSTRUCTIONS) ?? 'forward';
  const microbatch = c.uint('microbatch', begin.microbatch);
  const frequencyMhz = smClock(c, 'frequency_mhz', begin.frequency_mhz, device, {
    allowZero: true,
  });
  const tNs = c.int64('t_ns', begin.t_ns);
  if (c.ok && tNs <= 0n) c.fail('t_ns', `must be > 0 (client CLOCK_MONOTONIC), got ${tNs}`);
  root.done();
  return { seq, instruction, microbatch, frequencyMhz, tNs };
}

/** An `end` event. Fields prefixed `end.`. */
export function validateEnd(end: agentV1.End__Output | null | undefined): EndValue {
  const root = new Checker();
  if (!root.present('end', end)) {
    root.done();
    throw new Error('unreachable');
  }
  const c = root.at('end');
  const seq = c.uint64('seq', end.seq, { min: 1 });
  const tNs = c.int64('t_ns', end.t_ns);
  if (c.ok && tNs <= 0n) c.fail('t_ns', `must be > 0 (client CLOCK_MONOTONIC), got ${tNs}`);
  root.done();
  return { seq, tNs };
}

/**
 * Any message of an OpenSession stream. `first` says whether it is the first one (which must be
 * `open`, and only it); `device` is the leased device for clock checks on `begin`.
 */
export function validateSessionRequest(
  msg: agentV1.SessionRequest__Output | null | undefined,
  ctx: { first: boolean; devices?: readonly DeviceInfo[]; device?: DeviceInfo },
): SessionEventValue {
  const event = msg?.event;
  if (ctx.first && event !== 'open') {
    const c = new Checker();
    c.fail(
      'open',
      `is required as the first message of a session, got ${event ?? 'an empty message'}`,
    );
    c.done();
  }
  switch (event) {
    case 'open':
      if (!ctx.first) {
        const c = new Checker();
        c.fail('open', 'is allowed only as the first message of a session');
        c.done();
      }
      return { kind: 'open', open: validateOpenSession(msg?.open, ctx.devices) };
    case 'begin':
      return { kind: 'begin', begin: validateBegin(msg?.begin, ctx.device) };
    case 'end':
      return { kind: 'end', end: validateEnd(msg?.end) };
    case 'heartbeat':
      return { kind: 'heartbeat' };
    case undefined: {
      const c = new Checker();
      c.fail('event', 'is required: one of open, begin, end, heartbeat');
      c.done();
      throw new Error('unreachable');
    }
  }
}

function leaseId(c: Checker, value: string | null | undefined): string {
  return c.string('lease_id', value, {
    max: 64,
    pattern: LEASE_ID_PATTERN,
    patternText: '[A-Za-z0-9-]{1,64}',
  });
}

export function validateSetClocks(
  req: agentV1.SetClocksRequest__Output | null | undefined,
  devices?: readonly DeviceInfo[],
): SetClocksValue {
  const c = new Checker();
  const id = leaseId(c, req?.lease_id);
  const index = deviceIndex(c, 'device_index', req?.device_index, devices);
  const device = devices?.find((d) => d.index === index);
  const mhz = smClock(c, 'sm_clock_mhz', req?.sm_clock_mhz, device, { allowZero: false });
  c.done();
  return { leaseId: id, deviceIndex: index, smClockMhz: mhz };
}

export function validateResetClocks(
  req: agentV1.ResetClocksRequest__Output | null | undefined,
  devices?: readonly DeviceInfo[],
): ResetClocksValue {
  const c = new Checker();
  const id = leaseId(c, req?.lease_id);
  const index = deviceIndex(c, 'device_index', req?.device_index, devices);
  c.done();
  return { leaseId: id, deviceIndex: index };
}

export function validateReadEnergy(
  req: agentV1.ReadEnergyRequest__Output | null | undefined,
  devices?: readonly DeviceInfo[],
): ReadEnergyValue {
  const c = new Checker();
  const index = deviceIndex(c, 'device_index', req?.device_index, devices);
  c.done();
  return { deviceIndex: index };
}
