import type { Logger } from '@perseus/service-kit';
import type { GpuBackend } from '../backend';
import type { AgentOptions } from '../config';
import type { StateFile } from '../state-file';
import { AmdSmiBackend } from './amdsmi-backend';
import { NvmlBackend } from './nvml-backend';
import { SimulatedBackend } from './simulated-backend';

/**
 * Creates the backend named in `options.backend`. `auto` tries NVML, then AMD SMI (a library that
 * loads and reports at least one device), and falls back to simulated GPUs with a warning.
 */
export async function createBackend(
  options: Pick<
    AgentOptions,
    | 'backend'
    | 'simulatedModel'
    | 'simulatedDevices'
    | 'simulatedDriverLatencyMs'
    | 'profileDir'
    | 'nvmlLibrary'
    | 'amdsmiLibrary'
  >,
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
    });
    logger.info(
      {
        model: options.simulatedModel,
        devices: options.simulatedDevices,
        profile: b.table.source,
        provenance: b.table.spec.provenance,
      },
      'simulated GPUs',
    );
    return b;
  };
  switch (options.backend) {
    case 'simulated':
      return simulated();
    case 'nvml':
      return NvmlBackend.open(options.nvmlLibrary);
    case 'amdsmi':
      return AmdSmiBackend.open(options.amdsmiLibrary);
    case 'auto': {
      for (const [name, open] of [
        ['nvml', () => NvmlBackend.open(options.nvmlLibrary)],
        ['amdsmi', () => AmdSmiBackend.open(options.amdsmiLibrary)],
      ] as const) {
        try {
          const b = await open();
          if (b.devices().length > 0) {
            logger.info({ backend: name, devices: b.devices().length }, 'backend probed');
            return b;
          }
          await b.close();
        } catch (err) {
          logger.debug(
            { backend: name, err: err instanceof Error ? err.message : String(err) },
            'backend probe failed',
          );
        }
      }
      logger.warn('no NVIDIA or AMD GPU found: using simulated GPUs');
      return simulated();
    }
  }
}
