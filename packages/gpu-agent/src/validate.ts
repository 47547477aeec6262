import type { agentV1 } from '@perseus/proto';
import type { RankIdentity } from '@perseus/service-kit';
import { Checker, SIZE_LIMITS, checkRankIdentity } from '@perseus/service-kit';
import type { DeviceInfo } from './backend';
import { nearestClocks } from './backend';
import { INSTRUCTION_FROM_WIRE } from './wire';

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
  /** Pipeline GPUs N of the job (0 = not given); a simulated device models virtual stages with it. */
  numStages: number;
}

export interface BeginValue {
  seq: number;
  instruction: InstructionName;
  microbatch: number;
  /** 0 = default clocks. */
  frequencyMhz: number;
  tNs: bigint;
  /** Model chunk on this GPU (interleaved 1F1B; else 0). */
  chunk: number;
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

/** Lease ids are what the agent issues (UUIDs); anything else is refused before a lookup. */
const LEASE_ID_PATTERN = /^[A-Za-z0-9-]{1,64}$/;

/**
 * Ranges of the numeric fields (documented in agent.proto). Lease TTL: 0 (= agent default) or
 * [MIN, MAX]; the agent caps further by its own maximum.
 */
export const MIN_REQUESTED_LEASE_TTL_S = 0.1;
export const MAX_REQUESTED_LEASE_TTL_S = 86_400;
/** Client timestamps: 1 .. 2^62 - 1 ns (CLOCK_MONOTONIC; 146 years of uptime). */
export const MAX_T_NS = (1n << 62n) - 1n;
/** Longest instruction an End may close, ns (one hour). */
export const MAX_INSTRUCTION_NS = 3_600_000_000_000n;

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

function leaseTtl(c: Checker, value: number | null | undefined): number {
  const v = c.number('lease_ttl_s', value, { min: 0, max: MAX_REQUESTED_LEASE_TTL_S });
  if (v > 0 && v < MIN_REQUESTED_LEASE_TTL_S)
    c.fail(
      'lease_ttl_s',
      `must be 0 (agent default) or ${MIN_REQUESTED_LEASE_TTL_S}-${MAX_REQUESTED_LEASE_TTL_S} s, got ${v}`,
    );
  return v;
}

/** A client CLOCK_MONOTONIC timestamp: 1 .. 2^62 - 1 ns. */
function timestamp(c: Checker, value: string | number | null | undefined): bigint {
  let t: bigint;
  try {
    t = BigInt(value ?? 0);
  } catch {
    c.fail('t_ns', `must be an integer, got ${String(value)}`);
    return 0n;
  }
  if (t <= 0n || t > MAX_T_NS)
    c.fail('t_ns', `must be 1 .. 2^62-1 ns (client CLOCK_MONOTONIC), got ${t}`);
  return t;
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
    leaseTtlS: leaseTtl(c, open.lease_ttl_s),
    numStages: c.uint('num_stages', open.num_stages, { max: SIZE_LIMITS.maxStages }),
  };
  if (c.ok && value.numStages > 0 && value.rank.ppRank >= value.numStages)
    c.fail('rank.pp_rank', `must be < num_stages ${value.numStages}, got ${value.rank.ppRank}`);
  root.done();
  return value;
}

/**
 * A `begin` event; `device` (the leased one) checks the clock, `position` (the lease's pp_rank and
 * num_stages) the chunk's virtual stage. Fields prefixed `begin.`.
 */
export function validateBegin(
  begin: agentV1.Begin__Output | null | undefined,
  device?: DeviceInfo,
  position?: { ppRank: number; numStages: number },
): BeginValue {
  const root = new Checker();
  if (!root.present('begin', begin)) {
    root.done();
    throw new Error('unreachable');
  }
  const c = root.at('begin');
  const seq = c.uint64('seq', begin.seq, { min: 1 });
  const instruction =
    c.enumValue('instruction', begin.instruction, INSTRUCTION_FROM_WIRE) ?? 'forward';
  const microbatch = c.uint('microbatch', begin.microbatch, {
    max: SIZE_LIMITS.maxMicrobatches - 1,
  });
  const frequencyMhz = smClock(c, 'frequency_mhz', begin.frequency_mhz, device, {
    allowZero: true,
  });
  const tNs = timestamp(c, begin.t_ns);
  const chunk = c.uint('chunk', begin.chunk, { max: SIZE_LIMITS.maxStages - 1 });
  if (
    position &&
    position.numStages > 0 &&
    chunk * position.numStages + position.ppRank >= SIZE_LIMITS.maxStages
  )
    c.fail(
      'chunk',
      `chunk × num_stages (${position.numStages}) + pp_rank (${position.ppRank}) must be < ${SIZE_LIMITS.maxStages}, got chunk ${chunk}`,
    );
  root.done();
  return { seq, instruction, microbatch, frequencyMhz, tNs, chunk };
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
  const tNs = timestamp(c, end.t_ns);
  root.done();
  return { seq, tNs };
}

/**
 * Any message of an OpenSession stream. `first` says whether it is the first one (which must be
 * `open`, and only it); `device` is the leased device for clock checks on `begin`.
 */
export function validateSessionRequest(
  msg: agentV1.SessionRequest__Output | null | undefined,
  ctx: {
    first: boolean;
    devices?: readonly DeviceInfo[];
    device?: DeviceInfo;
    position?: { ppRank: number; numStages: number };
  },
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
      return { kind: 'begin', begin: validateBegin(msg?.begin, ctx.device, ctx.position) };
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

/** What an AdminReset resets: a job's devices (and its steps'), listed devices, or all of them. */
export type AdminResetTarget =
  | { kind: 'job'; jobId: string }
  | { kind: 'devices'; indices: number[] }
  | { kind: 'all' };

export interface AdminResetValue {
  target: AdminResetTarget;
  /** For the audit log and the ended sessions' error; may be empty. */
  reason: string;
}

/** Printable ASCII, so a reason cannot forge lines in the audit log or the clients' errors. */
const REASON_PATTERN = /^[\x20-\x7e]*$/;

export function validateAdminReset(
  req: agentV1.AdminResetRequest__Output | null | undefined,
  devices?: readonly DeviceInfo[],
): AdminResetValue {
  const c = new Checker();
  const reason = c.string('reason', req?.reason, {
    min: 0,
    max: 200,
    pattern: REASON_PATTERN,
    patternText: 'printable ASCII',
  });
  let target: AdminResetTarget = { kind: 'all' };
  switch (req?.target) {
    case 'job_id':
      target = { kind: 'job', jobId: c.id('job_id', req.job_id) };
      break;
    case 'devices': {
      const list = req.devices?.indices ?? [];
      const max = devices?.length ?? 0xffffffff;
      if (list.length === 0) c.fail('devices.indices', 'is required (at least one device)');
      else if (list.length > max)
        c.fail('devices.indices', `must have at most ${max} entries, got ${list.length}`);
      else {
        list.forEach((v, i) => deviceIndex(c, `devices.indices[${i}]`, v, devices));
        if (new Set(list).size !== list.length)
          c.fail('devices.indices', `must be distinct, got ${list.join(',')}`);
      }
      target = { kind: 'devices', indices: [...list] };
      break;
    }
    case 'all_devices':
      if (req.all_devices !== true) c.fail('all_devices', 'must be true when set');
      break;
    case undefined:
      c.fail('target', 'is required: job_id, devices or all_devices');
      break;
  }
  c.done();
  return { target, reason };
}
