/**
 * The ONE set of size limits of the wire contract. Every size a request can imply — stages,
 * microbatches, parallel degrees, world size, clocks, profile rows, batch entries — is bounded
 * here and checked at the boundary of every RPC that accepts it (agent, profiler, optimizer), so no
 * single request can make a service allocate or compute beyond these. The proto comments of the
 * fields name the same numbers (protos/perseus/common/v1/common.proto, "Limits").
 */
export const SIZE_LIMITS = {
  /** Pipeline stages N of a job; any stage index is < this. */
  maxStages: 256,
  /** Microbatches M per iteration; any microbatch index is < this. */
  maxMicrobatches: 4096,
  /** Data- and tensor-parallel degrees; dp_rank and tp_rank are < this. */
  maxDegree: 65_536,
  /** World size (stages × dp × tp); a global rank is < this. */
  maxWorldSize: 1_048_576,
  /** Distinct SM clocks of a job (supported clocks, clocks of an imported profile). */
  maxFrequencies: 1024,
  /** Highest SM clock accepted anywhere, MHz. */
  maxFrequencyMhz: 100_000,
  /** Rows of one profile (ImportProfile CSV rows, PlanOffline rows). */
  maxProfileRows: 200_000,
  /** Measurements in one MeasurementBatch. */
  maxBatchMeasurements: 10_000,
  /** Iteration records in one ReportIterations. */
  maxIterationRecords: 10_000,
  /**
   * Largest message a server accepts, bytes (grpc-js default 4 MiB). A profiler stream message over
   * it is answered with a per-batch RESOURCE_EXHAUSTED error; clients split batches to stay under.
   */
  maxMessageBytes: 4 * 1024 * 1024,
} as const;

export type SizeLimits = typeof SIZE_LIMITS;
