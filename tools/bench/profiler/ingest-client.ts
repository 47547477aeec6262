/**
 * A measurement client for the profiler benchmarks: N bidi streams, each keeping a window of
 * batches in flight; counts what was acknowledged (= durably committed by the server).
 */
import * as grpc from '@grpc/grpc-js';
import type { profilerV1 } from '@perseus/proto';
import { perseusGrpc } from '@perseus/proto';

/**
 * A 1,024-GPU GPT-3 layout: 8 stages × 16 pipelines × 8 TP ranks, 96 microbatches, the A100's 38
 * clocks 1410…855 MHz swept from the top, one clock per window of iterations (as the optimizer's
 * profiling phase does).
 */
export const JOB_SHAPE = {
  stages: 8,
  dp: 16,
  tp: 8,
  microbatches: 96,
  frequenciesMhz: Array.from({ length: 38 }, (_, i) => 1410 - 15 * i),
  /** Iterations (of one stream) per clock. */
  windowIterations: 20,
};

export type ProfilerClient = InstanceType<
  ReturnType<typeof perseusGrpc>['perseus']['profiler']['v1']['Profiler']
>;

export function connect(address: string): ProfilerClient {
  return new (perseusGrpc().perseus.profiler.v1.Profiler)(
    address,
    grpc.credentials.createInsecure(),
    {
      'grpc.max_send_message_length': 16 * 1024 * 1024,
    },
  );
}

export function registerJob(client: ProfilerClient, jobId: string): Promise<void> {
  return new Promise((resolve, reject) =>
    client.RegisterJob(
      {
        job_id: jobId,
        pipeline: {
          schedule: 'SCHEDULE_KIND_1F1B',
          num_stages: JOB_SHAPE.stages,
          num_microbatches: JOB_SHAPE.microbatches,
        },
        dp_degree: JOB_SHAPE.dp,
        tp_degree: JOB_SHAPE.tp,
        supported_frequencies_mhz: JOB_SHAPE.frequenciesMhz,
      },
      (err) => (err ? reject(err) : resolve()),
    ),
  );
}

/**
 * Batch `seq` of stream `streamIndex`: `size` measurements that no other batch repeats. A stream
 * plays the ranks of pipeline (streamIndex mod dp) and walks (iteration, stage, tp, microbatch).
 */
export function makeBatch(
  jobId: string,
  streamIndex: number,
  seq: number,
  size: number,
  windowIterations: number = JOB_SHAPE.windowIterations,
): profilerV1.MeasurementBatch {
  const { stages, dp, tp, microbatches, frequenciesMhz } = JOB_SHAPE;
  const perIteration = stages * tp * microbatches;
  const measurements: profilerV1.InstructionMeasurement[] = new Array(size);
  for (let i = 0; i < size; i++) {
    const n = seq * size + i;
    const dpRank = streamIndex % dp;
    // Streams sharing a pipeline (more streams than dp) use disjoint iteration ranges.
    const iteration = Math.floor(n / perIteration) * 8 + Math.floor(streamIndex / dp);
    const r = n % perIteration;
    const stage = Math.floor(r / (tp * microbatches));
    const tpRank = Math.floor(r / microbatches) % tp;
    const mb = r % microbatches;
    measurements[i] = {
      rank: {
        rank: (dpRank * stages + stage) * tp + tpRank,
        dp_rank: dpRank,
        pp_rank: stage,
        tp_rank: tpRank,
      },
      instruction: (n & 1) === 0 ? 'INSTRUCTION_KIND_FORWARD' : 'INSTRUCTION_KIND_BACKWARD',
      microbatch: mb,
      frequency_mhz:
        frequenciesMhz[Math.floor(n / perIteration / windowIterations) % frequenciesMhz.length]!,
      time_s: 0.05 + 0.001 * (n % 7),
      energy_j: 20 + 0.1 * (n % 11),
      iteration: String(iteration),
    };
  }
  return { batch_id: `s${streamIndex}-${seq}`, job_id: jobId, measurements };
}

export interface StreamResult {
  ackedBatches: number;
  ackedMeasurements: number;
  errors: number;
  /** Batch ids acknowledged as stored (for the restart check). */
  ackedIds: string[];
}

/**
 * Runs one stream until `until()` is true (then ends it and waits for the outstanding acks), with
 * `window` batches in flight. `keepIds` records acknowledged batch ids.
 */
export function runStream(
  client: ProfilerClient,
  jobId: string,
  streamIndex: number,
  opts: {
    batchSize: number;
    window: number;
    until: () => boolean;
    keepIds?: boolean;
    firstSeq?: number;
  },
): Promise<StreamResult> {
  return new Promise((resolve) => {
    const call = client.ReportMeasurements();
    const result: StreamResult = { ackedBatches: 0, ackedMeasurements: 0, errors: 0, ackedIds: [] };
    let seq = opts.firstSeq ?? 0;
    let inflight = 0;
    let ending = false;
    const pump = (): void => {
      while (!ending && inflight < opts.window) {
        if (opts.until()) {
          ending = true;
          call.end();
          return;
        }
        inflight++;
        call.write(makeBatch(jobId, streamIndex, seq++, opts.batchSize));
      }
    };
    call.on('data', (ack: profilerV1.BatchAck__Output) => {
      inflight--;
      if (ack.error) result.errors++;
      else {
        result.ackedBatches++;
        result.ackedMeasurements += ack.stored_count;
        if (opts.keepIds) result.ackedIds.push(ack.batch_id);
      }
      pump();
    });
    call.on('error', () => resolve(result));
    call.on('end', () => resolve(result));
    pump();
  });
}
