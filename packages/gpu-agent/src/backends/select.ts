import type { Logger } from '@perseus/service-kit';
import type { GpuBackend } from '../backend';
import type { AgentOptions } from '../config';
import type { StateFile } from '../state-file';
import { AmdSmiBackend } from './amdsmi-backend';
import { findGpuDeviceNodes } from './gpu-device-nodes';
import { NvmlBackend } from './nvml-backend';
import { SimulatedBackend } from './simulated-backend';

type BackendOptions = Pick<
  AgentOptions,
  | 'backend'
  | 'simulatedModel'
  | 'simulatedDevices'
  | 'simulatedDriverLatencyMs'
  | 'profileDir'
  | 'nvmlLibrary'
  | 'amdsmiLibrary'
> &
  Partial<
    Pick<
      AgentOptions,
      'deviceRoot' | 'simulatedTimeScale' | 'simulatedCounterPeriodMs' | 'simulatedPowerJitter'
    >
  >;

/** A driver library that would not load or initialise: names the library and what it said. */
export class DriverLibraryError extends Error {
  constructor(
    readonly driver: 'NVML' | 'AMD SMI',
    readonly library: string,
    cause: unknown,
  ) {
    super(
      `${driver} library ${JSON.stringify(library)} failed: ${cause instanceof Error ? cause.message : String(cause)}`,
    );
  }
}

async function openDriver(
  driver: 'NVML' | 'AMD SMI',
  library: string,
  open: (library: string) => Promise<GpuBackend>,
): Promise<GpuBackend> {
  try {
    return await open(library);
  } catch (err) {
    throw new DriverLibraryError(driver, library, err);
  }
}

/**
 * Creates the backend named in `options.backend`. `auto` uses NVML, then AMD SMI (a library that
 * loads and reports at least one device). When neither does, it falls back to simulated GPUs only
 * if this host has no GPU device nodes; with NVIDIA or AMD device nodes present it refuses to
 * start, naming the library that failed — simulated energy must never stand in for a real GPU's.
 */
export async function createBackend(
  options: BackendOptions,
  stateFile: StateFile,
  logger: Logger,
): Promise<GpuBackend> {
  const simulated = (): GpuBackend => {
    const b = new SimulatedBackend({
      model: options.simulatedModel,
      count: options.simulatedDevices,
      profileDir: options.profileDir,
      stateFile,
      driverLatencyMs: options.simulatedDriverLatencyMs,
      timeScale: options.simulatedTimeScale,
      counterPeriodMs: options.simulatedCounterPeriodMs,
      powerJitter: options.simulatedPowerJitter,
    });
    logger.warn(
      {
        simulated: true,
        model: options.simulatedModel,
        devices: options.simulatedDevices,
        timeScale: options.simulatedTimeScale,
        counterPeriodMs: options.simulatedCounterPeriodMs,
        powerJitter: options.simulatedPowerJitter,
        profile: b.table.source,
        provenance: b.table.spec.provenance,
      },
      'SIMULATED GPUs: clocks, power and energy come from a profile table, not from hardware',
    );
    return b;
  };
  const nvml = (): Promise<GpuBackend> =>
    openDriver('NVML', options.nvmlLibrary, (l) => NvmlBackend.open(l));
  const amdsmi = (): Promise<GpuBackend> =>
    openDriver('AMD SMI', options.amdsmiLibrary, (l) => AmdSmiBackend.open(l));
  switch (options.backend) {
    case 'simulated':
      return simulated();
    case 'nvml':
      return nvml();
    case 'amdsmi':
      return amdsmi();
    case 'auto':
      return autoBackend(options, logger, nvml, amdsmi, simulated);
  }
}

async function autoBackend(
  options: BackendOptions,
  logger: Logger,
  nvml: () => Promise<GpuBackend>,
  amdsmi: () => Promise<GpuBackend>,
  simulated: () => GpuBackend,
): Promise<GpuBackend> {
  const nodes = findGpuDeviceNodes(options.deviceRoot);
  const failures: string[] = [];
  for (const [name, open, found] of [
    ['nvml', nvml, nodes.nvidia],
    ['amdsmi', amdsmi, nodes.amd],
  ] as const) {
    try {
      const b = await open();
      if (b.devices().length > 0) {
        logger.info({ backend: name, devices: b.devices().length }, 'backend probed');
        return b;
      }
      await b.close();
      if (found.length > 0) failures.push(`${name} loaded but reports no device`);
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      logger.debug({ backend: name, err: text }, 'backend probe failed');
      if (found.length > 0) failures.push(text);
    }
  }
  const present = [...nodes.nvidia, ...nodes.amd];
  if (present.length > 0) {
    throw new Error(
      `this host has GPU device nodes (${present.join(', ')}) but no GPU management library works: ${failures.join('; ')}. ` +
        'Install the driver library or point --agent-nvml-library / --agent-amdsmi-library at it; ' +
        'the agent does not serve simulated GPUs on a GPU host unless --agent-backend simulated is given explicitly',
    );
  }
  logger.warn(
    { simulated: true },
    'no NVIDIA or AMD GPU on this host (no /dev/nvidia*, /dev/kfd or AMD/NVIDIA render node): using SIMULATED GPUs',
  );
  return simulated();
}
