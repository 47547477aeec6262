/**
 * Per-rank schedules as wire bytes. Every rank of a stage (any dp in the same variant, any tp)
 * shares one message apart from `rank`, so the message without `rank` is encoded once per
 * (version, variant, stage) and each watcher's copy appends field 2 — protobuf parses concatenated
 * encodings as one merged message. With thousands of watchers this is the difference between one
 * encode per stage and one per rank.
 */
import { perseusGrpc } from '@perseus/proto';
import type { optimizerV1 } from '@perseus/proto';
import type { Deployment, RankIdentity } from './types';
import type { EncodedSchedule } from './watch-hub';
import { KIND_TO_PROTO, PHASE_TO_PROTO } from './wire';

/** What every schedule of a job generation carries. */
export interface ScheduleHead {
  jobId: string;
  generation: number;
  specHash: string;
}

const serializeSchedule = (s: optimizerV1.Schedule): Buffer =>
  perseusGrpc().perseus.optimizer.v1.Optimizer.service.WatchSchedule.responseSerialize(s);

/** Field 2 (`rank`, varint) of a Schedule. */
function rankField(rank: number): Buffer {
  const bytes = [0x10];
  let v = rank >>> 0;
  while (v >= 0x80) {
    bytes.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/** The encoded schedules of one deployment (call {@link clear} whenever the deployment changes). */
export class ScheduleEncoder {
  private readonly cache = new Map<string, Buffer>();

  clear(): void {
    this.cache.clear();
  }

  /** The schedule of `rank` (`info` undefined: not registered yet) under deployment `d`. */
  encode(
    head: ScheduleHead,
    d: Deployment,
    rank: number,
    info: Pick<RankIdentity, 'dpRank' | 'ppRank'> | undefined,
  ): EncodedSchedule {
    const key =
      info === undefined
        ? 'unregistered'
        : `${d.variantOfPipeline[info.dpRank] ?? 0}:${info.ppRank}`;
    let bytes = this.cache.get(key);
    if (bytes === undefined) {
      bytes = serializeSchedule(scheduleMessage(head, d, info));
      this.cache.set(key, bytes);
    }
    return {
      version: d.version,
      payload: rank === 0 ? bytes : Buffer.concat([bytes, rankField(rank)]),
    };
  }
}

function scheduleMessage(
  head: ScheduleHead,
  d: Deployment,
  info: Pick<RankIdentity, 'dpRank' | 'ppRank'> | undefined,
): optimizerV1.Schedule {
  const common = {
    job_id: head.jobId,
    version: String(d.version),
    phase: PHASE_TO_PROTO[d.phase],
    generation: String(head.generation),
    spec_hash: head.specHash,
  };
  if (info === undefined) {
    return {
      ...common,
      instructions: [],
      expected_iteration_time_s: 0,
      expected_iteration_energy_j: 0,
      reason: 'rank not registered',
    };
  }
  const variant = d.variants[d.variantOfPipeline[info.dpRank] ?? 0]!;
  return {
    ...common,
    instructions: (variant.stages[info.ppRank] ?? []).map((x) => ({
      instruction: KIND_TO_PROTO[x.kind],
      microbatch: x.microbatch,
      frequency_mhz: x.frequencyMhz,
      chunk: x.chunk ?? 0,
    })),
    expected_iteration_time_s: variant.expectedTimeS,
    expected_iteration_energy_j: variant.expectedEnergyJ,
    reason: variant.reason,
  };
}
