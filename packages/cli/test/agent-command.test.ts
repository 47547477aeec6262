import { deviceLine, resetLine, resetRequest } from '../src/commands/agent';

/** `perseus agent reset` / `check`: flags → AdminReset request, replies → the lines an epilog logs. */
describe('perseus agent', () => {
  test.each([
    [{ job: 'slurm-42' }, { job_id: 'slurm-42', reason: '' }],
    [
      { devices: '0, 3', reason: 'r' },
      { devices: { indices: [0, 3] }, reason: 'r' },
    ],
    [{ all: true }, { all_devices: true, reason: '' }],
  ])('reset %j asks for %j', (flags, request) => {
    expect(resetRequest({ agent: 'unix:/x', timeoutS: '1', ...flags })).toEqual(request);
  });

  test.each([
    [{}, 'give exactly one of --job <id>, --devices <i,j,…> or --all'],
    [{ job: 'a', all: true }, 'give exactly one of --job <id>, --devices <i,j,…> or --all'],
    [{ devices: '0,x' }, "--devices must be device indices like 0,1,3, got '0,x'"],
  ])('reset %j is refused before any call', (flags, message) => {
    expect(() => resetRequest({ agent: 'unix:/x', timeoutS: '1', ...flags })).toThrow(message);
  });

  test('lines', () => {
    const rank = { rank: 3, dp_rank: 0, pp_rank: 1, tp_rank: 0 };
    expect(
      resetLine({
        index: 2,
        ok: true,
        error: '',
        locked_sm_clock_mhz: 0,
        ended_lease: { lease_id: '', job_id: 'slurm-42.0', rank, expires_at_unix_ms: '0' },
      }),
    ).toBe('device 2: reset ok, default clocks (ended job slurm-42.0 rank 3)');
    expect(
      resetLine({
        index: 1,
        ok: false,
        error: 'error: x',
        locked_sm_clock_mhz: 0,
        ended_lease: null,
      }),
    ).toBe('device 1: reset FAILED: error: x');
    expect(
      deviceLine({
        index: 0,
        uuid: 'u',
        pci_bus_id: 'p',
        name: 'n',
        backend: 'BACKEND_SIMULATED',
        supported_sm_clocks_mhz: [],
        supported_memory_clocks_mhz: [],
        energy_counter_available: true,
        locked_sm_clock_mhz: 1005,
        power_limit_w: 400,
        lease: { lease_id: '', job_id: 'j', rank, expires_at_unix_ms: '0' },
        simulated: true,
      }),
    ).toBe('device 0: SM locked at 1005 MHz, lease job j rank 3 (simulated)');
  });
});
