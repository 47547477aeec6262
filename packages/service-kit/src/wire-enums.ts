/**
 * Wire enums of `perseus.common.v1` → the services' domain values. Every table is keyed by the
 * generated enum type (less its `_UNSPECIFIED` zero), so a value added to the proto breaks the
 * build here until it is mapped or refused on purpose; no enum is compared as a number.
 */
import type { commonV1 } from '@perseus/proto';
import type { Checker } from './validate';

/** A generated enum's values without its `_UNSPECIFIED` zero. */
export type SpecifiedEnum<E extends string> = Exclude<E, `${string}_UNSPECIFIED`>;

/** Schedules the services accept in a PipelineSpec. */
export type WireSchedule = '1f1b' | 'gpipe' | 'interleaved';

export const SCHEDULE_FROM_WIRE: Readonly<
  Record<SpecifiedEnum<commonV1.ScheduleKind__Output>, WireSchedule>
> = {
  SCHEDULE_KIND_1F1B: '1f1b',
  SCHEDULE_KIND_GPIPE: 'gpipe',
  SCHEDULE_KIND_INTERLEAVED_1F1B: 'interleaved',
};

export const INSTRUCTION_FROM_WIRE: Readonly<
  Record<SpecifiedEnum<commonV1.InstructionKind__Output>, 'forward' | 'backward'>
> = {
  INSTRUCTION_KIND_FORWARD: 'forward',
  INSTRUCTION_KIND_BACKWARD: 'backward',
};

/** A wire instruction as a domain value; undefined for UNSPECIFIED or an unknown value. */
export function instructionFromWire(
  value: commonV1.InstructionKind | null | undefined,
): 'forward' | 'backward' | undefined {
  const name = String(value ?? '');
  return Object.prototype.hasOwnProperty.call(INSTRUCTION_FROM_WIRE, name)
    ? INSTRUCTION_FROM_WIRE[name as SpecifiedEnum<commonV1.InstructionKind__Output>]
    : undefined;
}

/**
 * A PipelineSpec's schedule: 1F1B, GPipe or interleaved 1F1B; anything else (UNSPECIFIED included)
 * fails on `field` of `c`, naming the accepted values.
 */
export function checkWireSchedule(
  c: Checker,
  field: string,
  value: commonV1.ScheduleKind | null | undefined,
): WireSchedule | undefined {
  return c.enumValue(field, value, SCHEDULE_FROM_WIRE);
}
