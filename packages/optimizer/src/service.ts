import { perseusGrpc } from '@perseus/proto';
import type { optimizerV1 } from '@perseus/proto';
import { rpc } from '@perseus/service-kit';
import type { HostedService } from '@perseus/service-kit';
import type * as grpc from '@grpc/grpc-js';
import { pointToProto } from './optimizer';
import type { Optimizer } from './optimizer';
import {
  validateGetFrontier,
  validateGetJobStatus,
  validatePlanOffline,
  validateRegisterJob,
  validateRegisterRank,
  validateReportIteration,
  validateReportStraggler,
  validateSetPolicy,
  validateWatchSchedule,
} from './validate';

const PHASE_ENUM = {
  REGISTERING: 'PHASE_REGISTERING',
  PROFILING: 'PHASE_PROFILING',
  PLANNING: 'PHASE_PLANNING',
  DEPLOYED: 'PHASE_DEPLOYED',
} as const;

type Call<Req> = grpc.ServerUnaryCall<Req, unknown>;
type Out<T> = T;

/** The thin gRPC adapter: validate, call the core, map to wire messages. */
export function optimizerService(core: Optimizer): HostedService {
  const base = perseusGrpc().perseus.optimizer.v1.Optimizer.service;
  const watch = base.WatchSchedule;
  // WatchSchedule writes schedules the optimizer has already encoded (one encode per stage, not
  // per watcher); anything else still goes through the generated serializer.
  const definition: grpc.ServiceDefinition = {
    ...base,
    WatchSchedule: {
      ...watch,
      responseSerialize: (v: optimizerV1.Schedule | Buffer) =>
        Buffer.isBuffer(v) ? v : watch.responseSerialize(v),
    },
  };
  return {
    name: 'perseus.optimizer.v1.Optimizer',
    definition,
    handlers: {
      RegisterJob: rpc.unary(
        (req: optimizerV1.RegisterJobRequest__Output): Out<optimizerV1.RegisterJobResponse> => {
          const { jobId, spec } = validateRegisterJob(req);
          const r = core.registerJob(jobId, spec);
          return { created: r.created, phase: PHASE_ENUM[r.phase] };
        },
      ),
      RegisterRank: rpc.unary(
        (req: optimizerV1.RegisterRankRequest__Output): Out<optimizerV1.RegisterRankResponse> => {
          const r = core.registerRank(validateRegisterRank(req));
          return { created: r.created, registered_ranks: r.registeredRanks };
        },
      ),
      WatchSchedule: rpc.serverStream(
        (
          call: grpc.ServerWritableStream<
            optimizerV1.WatchScheduleRequest__Output,
            optimizerV1.Schedule
          >,
        ) => {
          const { jobId, rank } = validateWatchSchedule(call.request);
          const first = core.currentSchedule(jobId, rank);
          core.hub.add(
            jobId,
            rank,
            call as unknown as grpc.ServerWritableStream<unknown, Buffer>,
            first,
          );
        },
      ),
      ReportIteration: rpc.unary(
        (
          req: optimizerV1.ReportIterationRequest__Output,
        ): Out<optimizerV1.ReportIterationResponse> => {
          const r = core.reportIteration(validateReportIteration(req));
          return { schedule_version: String(r.scheduleVersion) };
        },
      ),
      ReportStraggler: rpc.unary(
        (
          req: optimizerV1.ReportStragglerRequest__Output,
        ): Out<optimizerV1.ReportStragglerResponse> => {
          const r = core.reportStraggler(validateReportStraggler(req));
          return {
            schedule_version: String(r.scheduleVersion),
            target_iteration_time_s: r.targetIterationTimeS,
          };
        },
      ),
      GetFrontier: rpc.unary(
        (req: optimizerV1.GetFrontierRequest__Output): Out<optimizerV1.GetFrontierResponse> => {
          const { frontier, chosenIndex } = core.getFrontier(validateGetFrontier(req).jobId);
          return {
            points: frontier.points.map(pointToProto),
            chosen_index: chosenIndex,
            all_max_time_s: frontier.allMax.timeS,
            all_max_energy_j: frontier.allMax.energyJ,
            min_energy_time_s: frontier.minEnergyTimeS,
          };
        },
      ),
      SetPolicy: rpc.unary(
        (req: optimizerV1.SetPolicyRequest__Output): Out<optimizerV1.SetPolicyResponse> => {
          const { jobId, policy } = validateSetPolicy(req);
          const r = core.setPolicy(jobId, policy);
          return {
            schedule_version: String(r.scheduleVersion),
            chosen: r.chosen === undefined ? null : pointToProto(r.chosen),
          };
        },
      ),
      PlanOffline: rpc.unary(
        (req: optimizerV1.PlanOfflineRequest__Output): Promise<optimizerV1.PlanOfflineResponse> =>
          core.planOffline(validatePlanOffline(req)),
      ),
      GetJobStatus: rpc.unary(
        (
          req: optimizerV1.GetJobStatusRequest__Output,
          _call: Call<unknown>,
        ): Out<optimizerV1.GetJobStatusResponse> =>
          core.getJobStatus(validateGetJobStatus(req).jobId),
      ),
    },
  };
}
