import { LOADER_OPTIONS, loadPackageDefinition, perseusGrpc } from '../src';

describe('proto loader', () => {
  it('loads every service with the RPCs of architecture.md §5', () => {
    const g = perseusGrpc().perseus;
    expect(Object.keys(g.agent.v1.GpuAgent.service).sort()).toEqual(
      ['AdminReset', 'ListDevices', 'OpenSession', 'ReadEnergy', 'ResetClocks', 'SetClocks'].sort(),
    );
    expect(Object.keys(g.profiler.v1.Profiler.service).sort()).toEqual(
      [
        'ExportProfile',
        'GetCoverage',
        'GetProfile',
        'ImportProfile',
        'RegisterJob',
        'ReportIterations',
        'ReportMeasurements',
      ].sort(),
    );
    expect(Object.keys(g.optimizer.v1.Optimizer.service).sort()).toEqual(
      [
        'DeleteJob',
        'GetFrontier',
        'GetJob',
        'GetJobStatus',
        'ListJobs',
        'PlanOffline',
        'RegisterJob',
        'RegisterRank',
        'ReportIteration',
        'ReportStraggler',
        'SetPolicy',
        'WatchSchedule',
      ].sort(),
    );
  });

  it('streams are declared as the contract says', () => {
    const { GpuAgent } = perseusGrpc().perseus.agent.v1;
    const { Profiler } = perseusGrpc().perseus.profiler.v1;
    const { Optimizer } = perseusGrpc().perseus.optimizer.v1;
    expect([
      GpuAgent.service.OpenSession.requestStream,
      GpuAgent.service.OpenSession.responseStream,
    ]).toEqual([true, true]);
    expect(Profiler.service.ReportMeasurements.requestStream).toBe(true);
    expect([
      Optimizer.service.WatchSchedule.requestStream,
      Optimizer.service.WatchSchedule.responseStream,
    ]).toEqual([false, true]);
  });

  it('encodes 64-bit integers as strings without precision loss', () => {
    expect(LOADER_OPTIONS.longs).toBe(String);
    const def = loadPackageDefinition()['perseus.agent.v1.Begin'];
    expect(def).toBeDefined();
    const type = (def as { type: unknown }).type;
    expect(type).toBeDefined();
    const { GpuAgent } = perseusGrpc().perseus.agent.v1;
    const ser = GpuAgent.service.OpenSession.requestSerialize;
    const de = GpuAgent.service.OpenSession.requestDeserialize;
    const msg = de(ser({ begin: { seq: '18446744073709551615', t_ns: '1234567890123456789' } }));
    expect(msg.begin?.seq).toBe('18446744073709551615');
    expect(msg.begin?.t_ns).toBe('1234567890123456789');
    expect(msg.event).toBe('begin');
  });
});
