import koffi from 'koffi';
import type { KoffiFunction } from 'koffi';
import type { DeviceInfo, GpuBackend } from '../backend';
import { cString, callAsync } from './ffi';

const AMDSMI_STATUS_SUCCESS = 0;
const AMDSMI_INIT_AMD_GPUS = 2n;
const AMDSMI_CLK_TYPE_SYS = 0;
const AMDSMI_DEV_PERF_LEVEL_AUTO = 0;
/** amdsmi_frequencies_t: bool has_deep_sleep; uint32 num_supported; uint32 current; uint64 frequency[33] (Hz). */
const FREQS_SIZE = 16 + 33 * 8;
/** amdsmi_power_cap_info_t: uint64 power_cap, default_power_cap, dpm_cap, min_power_cap, max_power_cap (µW). */
const POWER_CAP_SIZE = 5 * 8;

function bind(lib: koffi.IKoffiLib): Record<string, KoffiFunction> {
  const f = (sig: string): KoffiFunction => lib.func(sig);
  return {
    init: f('int amdsmi_init(uint64_t flags)'),
    shutdown: f('int amdsmi_shut_down()'),
    sockets: f('int amdsmi_get_socket_handles(uint32_t *count, void **handles)'),
    processors: f(
      'int amdsmi_get_processor_handles(void *socket, uint32_t *count, void **handles)',
    ),
    uuid: f('int amdsmi_get_gpu_device_uuid(void *handle, uint32_t *len, uint8_t *uuid)'),
    bdf: f('int amdsmi_get_gpu_device_bdf(void *handle, uint64_t *bdf)'),
    freqs: f('int amdsmi_get_clk_freq(void *handle, int clkType, uint8_t *freqs)'),
    clkRange: f(
      'int amdsmi_set_gpu_clk_range(void *handle, uint64_t minMhz, uint64_t maxMhz, int clkType)',
    ),
    perfLevel: f('int amdsmi_set_gpu_perf_level(void *handle, int perfLevel)'),
    energy: f(
      'int amdsmi_get_energy_count(void *handle, uint64_t *accumulator, float *resolution, uint64_t *timestamp)',
    ),
    capInfo: f('int amdsmi_get_power_cap_info(void *handle, uint32_t sensor, uint8_t *info)'),
    setCap: f('int amdsmi_set_power_cap(void *handle, uint32_t sensor, uint64_t cap)'),
  };
}

export class AmdSmiError extends Error {
  constructor(
    readonly call: string,
    readonly code: number,
  ) {
    super(`${call}: AMD SMI status ${code}`);
  }
}

interface AmdDevice {
  info: DeviceInfo;
  handle: unknown;
  lockedMhz: number;
  lastEnergy: { ns: bigint; mj: number } | undefined;
  lastPowerW: number;
}

/**
 * AMD GPUs through libamd_smi.so (koffi FFI). What AMD cannot do, and how we degrade:
 * - No exact clock lock: only a min..max SCLK range (`amdsmi_set_gpu_clk_range`); we set min = max.
 * - No per-domain reset: the only reset is the performance level back to `auto`
 *   (`amdsmi_set_gpu_perf_level`), which also drops any memory-clock setting, so
 *   `lockMemoryClockMax`/`resetMemoryClock` are no-ops (memory clock stays driver-managed).
 * - The supported-clock list is the driver's DPM levels (`amdsmi_get_clk_freq`), usually a handful,
 *   not NVML's 15 MHz grid; we expose exactly those levels.
 * - Power is derived from the energy counter (Δenergy/Δt), not a separate sensor struct, because
 *   `amdsmi_power_info_t`'s layout changed across ROCm releases.
 * Struct layouts follow amdsmi.h of ROCm 6.x.
 */
export class AmdSmiBackend implements GpuBackend {
  readonly kind = 'amdsmi' as const;
  private closed = false;

  private constructor(
    private readonly fns: Record<string, KoffiFunction>,
    private readonly devs: AmdDevice[],
  ) {}

  static async open(library = 'libamd_smi.so'): Promise<AmdSmiBackend> {
    const lib = koffi.load(library);
    const fns = bind(lib);
    const check = (call: string, rc: number): void => {
      if (rc !== AMDSMI_STATUS_SUCCESS) throw new AmdSmiError(call, rc);
    };
    check('amdsmi_init', Number(fns['init']!(AMDSMI_INIT_AMD_GPUS)));
    const handles: unknown[] = [];
    const n = Buffer.alloc(4);
    check('amdsmi_get_socket_handles', Number(fns['sockets']!(n, null)));
    const sockets: unknown[] = new Array(n.readUInt32LE(0)).fill(null);
    if (sockets.length > 0) {
      const sbuf = Buffer.alloc(sockets.length * 8);
      check('amdsmi_get_socket_handles', Number(fns['sockets']!(n, sbuf)));
      for (let i = 0; i < n.readUInt32LE(0); i++) {
        const sock = koffi.decode(sbuf, i * 8, 'void *');
        const pc = Buffer.alloc(4);
        check('amdsmi_get_processor_handles', Number(fns['processors']!(sock, pc, null)));
        const count = pc.readUInt32LE(0);
        if (count === 0) continue;
        const pbuf = Buffer.alloc(count * 8);
        check('amdsmi_get_processor_handles', Number(fns['processors']!(sock, pc, pbuf)));
        for (let j = 0; j < pc.readUInt32LE(0); j++)
          handles.push(koffi.decode(pbuf, j * 8, 'void *'));
      }
    }
    const devs: AmdDevice[] = handles.map((handle, index) => {
      const uuid = Buffer.alloc(64);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(uuid.length, 0);
      check('amdsmi_get_gpu_device_uuid', Number(fns['uuid']!(handle, len, uuid)));
      const bdfBuf = Buffer.alloc(8);
      check('amdsmi_get_gpu_device_bdf', Number(fns['bdf']!(handle, bdfBuf)));
      const bdf = bdfBuf.readBigUInt64LE(0);
      const fn = Number(bdf & 0x7n);
      const dv = Number((bdf >> 3n) & 0x1fn);
      const bus = Number((bdf >> 8n) & 0xffn);
      const domain = Number(bdf >> 16n);
      const pciBusId = `${domain.toString(16).padStart(8, '0')}:${bus.toString(16).padStart(2, '0')}:${dv.toString(16).padStart(2, '0')}.${fn}`;
      const fb = Buffer.alloc(FREQS_SIZE);
      check('amdsmi_get_clk_freq', Number(fns['freqs']!(handle, AMDSMI_CLK_TYPE_SYS, fb)));
      const num = Math.min(33, fb.readUInt32LE(4));
      const clocks = Array.from({ length: num }, (_, k) =>
        Math.round(Number(fb.readBigUInt64LE(16 + k * 8)) / 1e6),
      );
      const cap = Buffer.alloc(POWER_CAP_SIZE);
      check('amdsmi_get_power_cap_info', Number(fns['capInfo']!(handle, 0, cap)));
      const uw = (k: number): number => Number(cap.readBigUInt64LE(k * 8)) / 1e6;
      return {
        info: {
          index,
          uuid: cString(uuid),
          pciBusId,
          name: `AMD GPU ${pciBusId}`,
          supportedSmClocksMhz: [...new Set(clocks)].sort((a, b) => b - a),
          supportedMemoryClocksMhz: [],
          energyCounterAvailable: true,
          defaultPowerLimitW: uw(1),
          powerLimitRangeW: [uw(3), uw(4)] as const,
        },
        handle,
        lockedMhz: 0,
        lastEnergy: undefined,
        lastPowerW: 0,
      };
    });
    return new AmdSmiBackend(fns, devs);
  }

  devices(): readonly DeviceInfo[] {
    return this.devs.map((d) => d.info);
  }

  private dev(index: number): AmdDevice {
    const d = this.devs[index];
    if (!d) throw new Error(`amdsmi: no device ${index}`);
    return d;
  }

  private async call(name: string, fn: string, ...args: unknown[]): Promise<void> {
    const rc = await callAsync(this.fns[fn]!, ...args);
    if (rc !== AMDSMI_STATUS_SUCCESS) throw new AmdSmiError(name, rc);
  }

  async lockSmClock(index: number, mhz: number): Promise<void> {
    const d = this.dev(index);
    await this.call(
      'amdsmi_set_gpu_clk_range',
      'clkRange',
      d.handle,
      BigInt(mhz),
      BigInt(mhz),
      AMDSMI_CLK_TYPE_SYS,
    );
    d.lockedMhz = mhz;
  }

  /** No per-domain reset on AMD: back to performance level `auto` (resets every domain). */
  async resetSmClock(index: number): Promise<void> {
    const d = this.dev(index);
    await this.call('amdsmi_set_gpu_perf_level', 'perfLevel', d.handle, AMDSMI_DEV_PERF_LEVEL_AUTO);
    d.lockedMhz = 0;
  }

  /** Degraded: AMD memory clock stays driver-managed (see class doc). */
  async lockMemoryClockMax(_index: number): Promise<void> {}

  async resetMemoryClock(_index: number): Promise<void> {}

  async getPowerLimitW(index: number): Promise<number> {
    const cap = Buffer.alloc(POWER_CAP_SIZE);
    await this.call('amdsmi_get_power_cap_info', 'capInfo', this.dev(index).handle, 0, cap);
    return Number(cap.readBigUInt64LE(0)) / 1e6;
  }

  async setPowerLimitW(index: number, watts: number): Promise<void> {
    await this.call(
      'amdsmi_set_power_cap',
      'setCap',
      this.dev(index).handle,
      0,
      BigInt(Math.round(watts * 1e6)),
    );
  }

  async resetPowerLimit(index: number): Promise<void> {
    await this.setPowerLimitW(index, this.dev(index).info.defaultPowerLimitW);
  }

  async readEnergyMj(index: number): Promise<number> {
    const d = this.dev(index);
    const acc = Buffer.alloc(8);
    const res = Buffer.alloc(4);
    const ts = Buffer.alloc(8);
    await this.call('amdsmi_get_energy_count', 'energy', d.handle, acc, res, ts);
    const mj = (Number(acc.readBigUInt64LE(0)) * res.readFloatLE(0)) / 1000;
    const now = process.hrtime.bigint();
    if (d.lastEnergy && now > d.lastEnergy.ns)
      d.lastPowerW = ((mj - d.lastEnergy.mj) / Number(now - d.lastEnergy.ns)) * 1e6;
    d.lastEnergy = { ns: now, mj };
    return mj;
  }

  /** Average power since the previous energy read (the counter is the sensor). */
  async readPowerW(index: number): Promise<number> {
    await this.readEnergyMj(index);
    return this.dev(index).lastPowerW;
  }

  async readLockedSmClockMhz(index: number): Promise<number> {
    return this.dev(index).lockedMhz;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await callAsync(this.fns['shutdown']!);
  }
}
