/**
 * Invalid planner input. `field` names the offending field (`pipeline.num_stages`,
 * `row 7 field 'time'`) so that a service can map it to a gRPC field violation.
 */
export class PlannerInputError extends Error {
  override readonly name = 'PlannerInputError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field} ${message}`);
  }
}
