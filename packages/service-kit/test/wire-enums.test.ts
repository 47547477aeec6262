import { Checker, ValidationError, checkWireSchedule, instructionFromWire } from '../src';

function scheduleOf(value: Parameters<typeof checkWireSchedule>[2]): {
  schedule: string | undefined;
  violations: string[];
} {
  const c = new Checker();
  const schedule = checkWireSchedule(c.at('pipeline'), 'schedule', value);
  try {
    c.done();
    return { schedule, violations: [] };
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return {
      schedule,
      violations: (err as ValidationError).violations.map((v) => `${v.field}: ${v.description}`),
    };
  }
}

describe('wire enums', () => {
  it('reads the supported schedules', () => {
    expect(scheduleOf('SCHEDULE_KIND_1F1B')).toEqual({ schedule: '1f1b', violations: [] });
    expect(scheduleOf('SCHEDULE_KIND_GPIPE')).toEqual({ schedule: 'gpipe', violations: [] });
    expect(scheduleOf('SCHEDULE_KIND_INTERLEAVED_1F1B')).toEqual({
      schedule: 'interleaved',
      violations: [],
    });
  });

  it('refuses anything else naming the accepted values', () => {
    const accepted = 'SCHEDULE_KIND_1F1B, SCHEDULE_KIND_GPIPE, SCHEDULE_KIND_INTERLEAVED_1F1B';
    expect(scheduleOf('SCHEDULE_KIND_UNSPECIFIED').violations).toEqual([
      `pipeline.schedule: must be one of ${accepted}, got SCHEDULE_KIND_UNSPECIFIED`,
    ]);
    expect(scheduleOf(undefined).violations).toEqual([
      `pipeline.schedule: must be one of ${accepted}, got nothing`,
    ]);
  });

  it('maps instructions, and nothing for UNSPECIFIED or an unknown value', () => {
    expect(instructionFromWire('INSTRUCTION_KIND_FORWARD')).toBe('forward');
    expect(instructionFromWire('INSTRUCTION_KIND_BACKWARD')).toBe('backward');
    expect(instructionFromWire('INSTRUCTION_KIND_UNSPECIFIED')).toBeUndefined();
    expect(instructionFromWire(undefined)).toBeUndefined();
  });
});
