import { perseusGrpc } from '@perseus/proto';
import type { optimizerV1 } from '@perseus/proto';
import { rpc } from '@perseus/service-kit';
import type { Handler, HostedService } from '@perseus/service-kit';
import type * as grpc from '@grpc/grpc-js';
import type { Optimizer } from './optimizer';
import {
  validateDeleteJob,
  validateGetFrontier,
  validateGetJob,
  validateGetJobStatus,
  validateListJobs,
  validatePlanOffline,
  validateRegisterJob,
  validateRegisterRank,
  validateReportIteration,
  validateReportStraggler,
  validateSetPolicy,
  validateWatchSchedule,
} from './validate';
import {
  PHASE_TO_PROTO,
  jobDetailsToProto,
  jobStatusToProto,
  planOfflineToProto,
  pointToProto,
  summaryToProto,
} from './wire';

/** The method names of a generated `*Handlers` interface, without its index signature. */
type MethodsOf<T> = keyof {
  [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K];
};
type Methods = MethodsOf<optimizerV1.OptimizerHandlers>;
/** Unary methods: their handler takes (call, callback); a server-stream handler takes (call). */
type UnaryMethods = {
  [K in Methods]: Parameters<optimizerV1.OptimizerHandlers[K]>['length'] extends 2 ? K : never;
}[Methods];
type RequestOf<K extends Methods> =
  Parameters<optimizerV1.OptimizerHandlers[K]>[0] extends grpc.ServerUnaryCall<infer Req, unknown>
    ? Req
    : never;
type ResponseOf<K extends Methods> =
  Parameters<optimizerV1.OptimizerHandlers[K]>[1] extends grpc.sendUnaryData<infer Res>
    ? Res
    : never;

/** A unary handler whose request and response types come from the generated service. */
function unary<K extends UnaryMethods>(
  fn: (
    req: RequestOf<K>,
    call: grpc.ServerUnaryCall<RequestOf<K>, ResponseOf<K>>,
  ) => ResponseOf<K> | Promise<ResponseOf<K>>,
): Handler {
  return rpc.unary(fn);
}

/** The thin gRPC adapter: validate, call the core, map domain values to wire messages. */
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
  // Keyed by the generated service: a new RPC without a handler here breaks the build.
  const handlers: Record<Methods, Handler> = {
    RegisterJob: unary<'RegisterJob'>((req) => {
      const { jobId, spec } = validateRegisterJob(req);
      const r = core.registerJob(jobId, spec);
      return {
        created: r.created,
        phase: PHASE_TO_PROTO[r.phase],
        generation: String(r.generation),
        spec_hash: r.specHash,
        profile_job_id: r.profileJobId,
      };
    }),
    RegisterRank: unary<'RegisterRank'>((req) => {
      const r = core.registerRank(validateRegisterRank(req));
      return {
        created: r.created,
        registered_ranks: r.registeredRanks,
        generation: String(r.generation),
        spec_hash: r.specHash,
        profile_job_id: r.profileJobId,
      };
    }),
    WatchSchedule: rpc.serverStream(
      (
        call: grpc.ServerWritableStream<
          optimizerV1.WatchScheduleRequest__Output,
          optimizerV1.Schedule
        >,
      ) => {
        const { jobId, rank, generation } = validateWatchSchedule(call.request);
        const first = core.currentSchedule(jobId, rank, generation);
        core.hub.add(
          jobId,
          rank,
          call as unknown as grpc.ServerWritableStream<unknown, Buffer>,
          first,
        );
      },
    ),
    ReportIteration: unary<'ReportIteration'>((req) => {
      const r = core.reportIteration(validateReportIteration(req));
      return { schedule_version: String(r.scheduleVersion) };
    }),
    ReportStraggler: unary<'ReportStraggler'>((req) => {
      const r = core.reportStraggler(validateReportStraggler(req));
      return {
        schedule_version: String(r.scheduleVersion),
        target_iteration_time_s: r.targetIterationTimeS,
      };
    }),
    GetFrontier: unary<'GetFrontier'>((req) => {
      const { frontier, chosenIndex } = core.getFrontier(validateGetFrontier(req).jobId);
      return {
        points: frontier.points.map(pointToProto),
        chosen_index: chosenIndex,
        all_max_time_s: frontier.allMax.timeS,
        all_max_energy_j: frontier.allMax.energyJ,
        min_energy_time_s: frontier.minEnergyTimeS,
      };
    }),
    SetPolicy: unary<'SetPolicy'>((req) => {
      const { jobId, policy } = validateSetPolicy(req);
      const r = core.setPolicy(jobId, policy);
      return {
        schedule_version: String(r.scheduleVersion),
        chosen: r.chosen === undefined ? null : pointToProto(r.chosen),
      };
    }),
    PlanOffline: unary<'PlanOffline'>(async (req, call) => {
      const input = validatePlanOffline(req);
      // The caller going away (or its deadline passing) cancels the planning.
      const abort = new AbortController();
      const onCancel = (): void => abort.abort();
      call.once('cancelled', onCancel);
      try {
        return planOfflineToProto(await core.planOffline(input, abort.signal), input.includePlans);
      } finally {
        call.off('cancelled', onCancel);
      }
    }),
    GetJobStatus: unary<'GetJobStatus'>((req) =>
      jobStatusToProto(core.getJobStatus(validateGetJobStatus(req).jobId)),
    ),
    ListJobs: unary<'ListJobs'>((req) => {
      const { pageSize, afterJobId } = validateListJobs(req);
      const { jobs, more } = core.listJobs(pageSize, afterJobId);
      return {
        jobs: jobs.map(summaryToProto),
        next_page_token: more ? jobs[jobs.length - 1]!.jobId : '',
      };
    }),
    GetJob: unary<'GetJob'>((req) => jobDetailsToProto(core.getJob(validateGetJob(req).jobId))),
    DeleteJob: unary<'DeleteJob'>((req) => {
      const { jobId, keepProfile, force } = validateDeleteJob(req);
      const r = core.deleteJob(jobId, { keepProfile, force });
      return { generation: String(r.generation), profile_deleted: r.profileDeleted };
    }),
  };
  return { name: 'perseus.optimizer.v1.Optimizer', definition, handlers };
}
