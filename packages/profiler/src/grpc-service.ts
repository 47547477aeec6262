/**
 * The gRPC adapter of perseus.profiler.v1.Profiler: validate, call {@link Profiler}, map results.
 * Errors thrown here go through service-kit's one error mapper; per-batch errors of
 * ReportMeasurements travel in-stream (BatchAck.error) so the stream goes on.
 */
import type * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import type { profilerV1 } from '@perseus/proto';
import { perseusGrpc } from '@perseus/proto';
import type { HostedService, ListenerAccess, Logger } from '@perseus/service-kit';
import { callerOf, rpc, toStreamError } from '@perseus/service-kit';
import type { Profiler } from './profiler';
import type { ProfileCell } from './types';
import { instructionToWire } from './types';
import {
  LIMITS,
  validateExportProfile,
  validateGetCoverage,
  validateGetProfile,
  validateImportProfile,
  validateMeasurementBatch,
  validateRegisterJob,
  validateReportIterations,
} from './validate';

export interface ProfilerServiceOptions {
  /** Most measurements per batch (≤ 10,000, the contract's limit). */
  maxBatchMeasurements?: number;
  /** Batches one stream may have waiting for commit before the server stops reading it (backpressure). */
  streamWindow?: number;
  /** The listener's access policy (tokens, scopes, jobs). Absent: open. */
  access?: ListenerAccess;
}

type JobRequest = { job_id?: string | null };
const jobOf = (req: JobRequest): string | undefined => req.job_id ?? undefined;

function cellToWire(c: ProfileCell): profilerV1.ProfileCell {
  return {
    stage: c.stage,
    instruction: instructionToWire(c.instruction),
    frequency_mhz: c.frequencyMhz,
    count: c.count,
    raw_count: c.rawCount,
    time_mean_s: c.timeMeanS,
    time_stddev_s: c.timeStddevS,
    time_robust_s: c.timeRobustS,
    energy_mean_j: c.energyMeanJ,
    energy_stddev_j: c.energyStddevJ,
    energy_robust_j: c.energyRobustJ,
  };
}

/** The hosted perseus.profiler.v1.Profiler service over `profiler`. */
export function profilerService(
  profiler: Profiler,
  logger: Logger,
  options: ProfilerServiceOptions = {},
): HostedService {
  const maxBatch = Math.min(
    options.maxBatchMeasurements ?? LIMITS.maxBatchMeasurements,
    LIMITS.maxBatchMeasurements,
  );
  const window = Math.max(1, options.streamWindow ?? 8);

  const reportMeasurements = (
    call: grpc.ServerDuplexStream<profilerV1.MeasurementBatch__Output, profilerV1.BatchAck>,
  ): Promise<void> =>
    new Promise<void>((resolve) => {
      let inflight = 0;
      let ended = false;
      let finished = false;
      let tail: Promise<void> = Promise.resolve();
      let draining = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        unsubscribe();
        resolve();
      };
      const maybeEnd = (): void => {
        if (finished || inflight > 0) return;
        if (draining) {
          // Every received batch has its ack; tell the client to come back later.
          call.emit('error', { code: status.UNAVAILABLE, details: 'profiler is shutting down' });
          finish();
        } else if (ended) {
          call.end();
          finish();
        }
      };
      // Graceful drain: stop reading, let the queued batches commit and their acks go out, then end.
      const unsubscribe = profiler.onClosing(() => {
        draining = true;
        call.pause();
        void tail.then(maybeEnd);
      });
      call.on('data', (msg: profilerV1.MeasurementBatch__Output) => {
        inflight++;
        if (inflight >= window) call.pause();
        const ack: Promise<profilerV1.BatchAck> = (async () => {
          let batch;
          try {
            const caller = callerOf(call);
            // The stream was admitted with scope report; each batch's job must be the token's too.
            if (options.access !== undefined && caller !== undefined)
              options.access.current.authorize(caller, 'report', msg.job_id ?? '');
            batch = validateMeasurementBatch(msg, maxBatch);
          } catch (err) {
            profiler.countRejected();
            throw err;
          }
          const r = await profiler.submitBatch(batch);
          return { batch_id: r.batchId, stored_count: r.storedCount, duplicate: r.duplicate };
        })().catch((err: unknown) => ({
          batch_id: msg.batch_id ?? '',
          stored_count: 0,
          duplicate: false,
          error: toStreamError(err, logger, 'ReportMeasurements batch'),
        }));
        // Acks leave in the order the batches came in.
        tail = tail
          .then(() => ack)
          .then((a) => {
            if (!finished && !call.cancelled) call.write(a);
            inflight--;
            if (inflight < window && call.isPaused() && !draining) call.resume();
            maybeEnd();
          });
      });
      call.on('end', () => {
        ended = true;
        maybeEnd();
      });
      call.on('cancelled', finish);
      call.on('error', finish);
    });

  return {
    name: 'perseus.profiler.v1.Profiler',
    definition: perseusGrpc().perseus.profiler.v1.Profiler.service,
    ...(options.access === undefined
      ? {}
      : {
          access: {
            listener: options.access,
            methods: {
              RegisterJob: { scope: 'report', jobOf },
              ReportMeasurements: { scope: 'report' },
              ReportIterations: { scope: 'report', jobOf },
              GetProfile: { scope: 'read' },
              GetCoverage: { scope: 'read' },
              ExportProfile: { scope: 'read' },
              ImportProfile: { scope: 'control', jobOf },
            },
          },
        }),
    handlers: {
      RegisterJob: rpc.unary<profilerV1.RegisterJobRequest__Output, profilerV1.RegisterJobResponse>(
        async (req) => profiler.registerJob(validateRegisterJob(req)),
      ),
      ReportMeasurements: rpc.bidi(reportMeasurements),
      ReportIterations: rpc.unary<
        profilerV1.ReportIterationsRequest__Output,
        profilerV1.ReportIterationsResponse
      >(async (req) => ({
        stored_count: await profiler.reportIterations(validateReportIterations(req)),
      })),
      GetProfile: rpc.unary<profilerV1.GetProfileRequest__Output, profilerV1.GetProfileResponse>(
        async (req) => ({
          cells: (await profiler.getProfile(validateGetProfile(req))).map(cellToWire),
        }),
      ),
      GetCoverage: rpc.unary<profilerV1.GetCoverageRequest__Output, profilerV1.GetCoverageResponse>(
        async (req) => {
          const cov = await profiler.getCoverage(validateGetCoverage(req));
          return {
            complete: cov.complete,
            entries: cov.entries.map((e) => ({
              stage: e.stage,
              instruction: instructionToWire(e.instruction),
              covered_frequencies_mhz: e.coveredFrequenciesMhz,
              missing_frequencies_mhz: e.missingFrequenciesMhz,
            })),
          };
        },
      ),
      ImportProfile: rpc.unary<
        profilerV1.ImportProfileRequest__Output,
        profilerV1.ImportProfileResponse
      >(async (req) => ({
        row_count: await profiler.importProfile(validateImportProfile(req)),
      })),
      ExportProfile: rpc.unary<
        profilerV1.ExportProfileRequest__Output,
        profilerV1.ExportProfileResponse
      >(async (req) => ({
        csv: await profiler.exportProfile(validateExportProfile(req)),
      })),
    },
  };
}
