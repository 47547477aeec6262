import koffi from 'koffi';
import type { KoffiFunction } from 'koffi';
import type { DeviceInfo, GpuBackend } from '../backend';
import { cString, callAsync } from './ffi';

const NVML_SUCCESS = 0;
const NVML_ERROR_NOT_SUPPORTED = 3;
/** sizeof(nvmlPciInfo_t) for nvmlDeviceGetPciInfo_v3; busId (char[32]) starts at byte 36. */
const PCI_INFO_SIZE = 68;
const PCI_BUS_ID_OFFSET = 36;

/** The NVML entry points we use (names and signatures from nvml.h; handles are opaque pointers). */
let deviceTypeRegistered = false;

function bind(lib: koffi.IKoffiLib): Record<string, KoffiFunction> {
  // koffi's type registry is process-wide: declare the opaque handle type once.
  if (!deviceTypeRegistered) {
    koffi.opaque('nvmlDevice_st');
    deviceTypeRegistered = true;
  }
  const f = (sig: string): KoffiFunction => lib.func(sig);
  return {
    init: f('int nvmlInit_v2()'),
    shutdown: f('int nvmlShutdown()'),
    errorString: f('const char *nvmlErrorString(int result)'),
    count: f('int nvmlDeviceGetCount_v2(_Out_ uint32_t *count)'),
    handle: f('int nvmlDeviceGetHandleByIndex_v2(uint32_t index, _Out_ nvmlDevice_st **device)'),
    uuid: f('int nvmlDeviceGetUUID(nvmlDevice_st *device, uint8_t *uuid, uint32_t length)'),
    name: f('int nvmlDeviceGetName(nvmlDevice_st *device, uint8_t *name, uint32_t length)'),
    pci: f('int nvmlDeviceGetPciInfo_v3(nvmlDevice_st *device, uint8_t *pci)'),
    memClocks: f(
      'int nvmlDeviceGetSupportedMemoryClocks(nvmlDevice_st *device, uint32_t *count, uint32_t *clocksMHz)',
    ),
    gfxClocks: f(
      'int nvmlDeviceGetSupportedGraphicsClocks(nvmlDevice_st *device, uint32_t memoryClockMHz, uint32_t *count, uint32_t *clocksMHz)',
    ),
    lockGpu: f(
      'int nvmlDeviceSetGpuLockedClocks(nvmlDevice_st *device, uint32_t minGpuClockMHz, uint32_t maxGpuClockMHz)',
    ),
    resetGpu: f('int nvmlDeviceResetGpuLockedClocks(nvmlDevice_st *device)'),
    lockMem: f(
      'int nvmlDeviceSetMemoryLockedClocks(nvmlDevice_st *device, uint32_t minMemClockMHz, uint32_t maxMemClockMHz)',
    ),
    resetMem: f('int nvmlDeviceResetMemoryLockedClocks(nvmlDevice_st *device)'),
    getLimit: f('int nvmlDeviceGetPowerManagementLimit(nvmlDevice_st *device, uint32_t *limit)'),
    setLimit: f('int nvmlDeviceSetPowerManagementLimit(nvmlDevice_st *device, uint32_t limit)'),
    defaultLimit: f(
      'int nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_st *device, uint32_t *defaultLimit)',
    ),
    limitRange: f(
      'int nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_st *device, uint32_t *minLimit, uint32_t *maxLimit)',
    ),
    energy: f('int nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_st *device, uint64_t *energy)'),
    power: f('int nvmlDeviceGetPowerUsage(nvmlDevice_st *device, uint32_t *power)'),
  };
}

export class NvmlError extends Error {
  constructor(
    readonly call: string,
    readonly code: number,
    text: string,
  ) {
    super(`${call}: NVML error ${code} (${text})`);
  }

  /** The device cannot do this at all (see isUnsupportedDriverError). */
  get unsupported(): boolean {
    return this.code === NVML_ERROR_NOT_SUPPORTED;
  }
}

interface NvmlDevice {
  info: DeviceInfo;
  handle: unknown;
  lockedMhz: number;
  /** Integration state when the device has no energy counter (pre-Volta). */
  integratedMj: number;
  lastPowerNs: bigint | undefined;
  lastPowerW: number;
}

/**
 * NVIDIA GPUs through libnvidia-ml.so.1 (koffi FFI, no native build). Clocks are locked with
 * nvmlDeviceSetGpuLockedClocks(min = max = f) and reset with nvmlDeviceResetGpuLockedClocks; energy
 * is nvmlDeviceGetTotalEnergyConsumption (mJ, Volta+), else integrated from nvmlDeviceGetPowerUsage.
 * NVML cannot report a locked clock, so `readLockedSmClockMhz` is what this process locked (the
 * state file covers a previous process).
 */
export class NvmlBackend implements GpuBackend {
  readonly kind = 'nvml' as const;
  private closed = false;

  private constructor(
    private readonly fns: Record<string, KoffiFunction>,
    private readonly devs: NvmlDevice[],
  ) {}

  /** Loads the library, initialises NVML and enumerates devices (synchronously: startup only). */
  static async open(library = 'libnvidia-ml.so.1'): Promise<NvmlBackend> {
    const lib = koffi.load(library);
    const fns = bind(lib);
    const check = (call: string, rc: number): void => {
      if (rc !== NVML_SUCCESS) throw new NvmlError(call, rc, String(fns['errorString']!(rc)));
    };
    check('nvmlInit_v2', Number(fns['init']!()));
    const countOut = [0];
    check('nvmlDeviceGetCount_v2', Number(fns['count']!(countOut)));
    const devs: NvmlDevice[] = [];
    for (let index = 0; index < Number(countOut[0]); index++) {
      const h: unknown[] = [null];
      check('nvmlDeviceGetHandleByIndex_v2', Number(fns['handle']!(index, h)));
      const handle = h[0];
      const uuid = Buffer.alloc(96);
      check('nvmlDeviceGetUUID', Number(fns['uuid']!(handle, uuid, uuid.length)));
      const name = Buffer.alloc(96);
      check('nvmlDeviceGetName', Number(fns['name']!(handle, name, name.length)));
      const pci = Buffer.alloc(PCI_INFO_SIZE);
      check('nvmlDeviceGetPciInfo_v3', Number(fns['pci']!(handle, pci)));
      const memClocks = clockList(
        fns,
        'nvmlDeviceGetSupportedMemoryClocks',
        (count, buf) => Number(fns['memClocks']!(handle, count, buf)),
        check,
      );
      const maxMem = Math.max(...memClocks);
      const smClocks = clockList(
        fns,
        'nvmlDeviceGetSupportedGraphicsClocks',
        (count, buf) => Number(fns['gfxClocks']!(handle, maxMem, count, buf)),
        check,
      );
      const u32 = Buffer.alloc(4);
      check('nvmlDeviceGetPowerManagementDefaultLimit', Number(fns['defaultLimit']!(handle, u32)));
      const defaultMw = u32.readUInt32LE(0);
      const lo = Buffer.alloc(4);
      const hi = Buffer.alloc(4);
      check(
        'nvmlDeviceGetPowerManagementLimitConstraints',
        Number(fns['limitRange']!(handle, lo, hi)),
      );
      const e = Buffer.alloc(8);
      const energyRc = Number(fns['energy']!(handle, e));
      if (energyRc !== NVML_SUCCESS && energyRc !== NVML_ERROR_NOT_SUPPORTED)
        check('nvmlDeviceGetTotalEnergyConsumption', energyRc);
      devs.push({
        info: {
          index,
          uuid: cString(uuid),
          pciBusId: cString(pci.subarray(PCI_BUS_ID_OFFSET)),
          name: cString(name),
          supportedSmClocksMhz: [...new Set(smClocks)].sort((a, b) => b - a),
          supportedMemoryClocksMhz: [...new Set(memClocks)].sort((a, b) => b - a),
          energyCounterAvailable: energyRc === NVML_SUCCESS,
          defaultPowerLimitW: defaultMw / 1000,
          powerLimitRangeW: [lo.readUInt32LE(0) / 1000, hi.readUInt32LE(0) / 1000],
        },
        handle,
        lockedMhz: 0,
        integratedMj: 0,
        lastPowerNs: undefined,
        lastPowerW: 0,
      });
    }
    return new NvmlBackend(fns, devs);
  }

  devices(): readonly DeviceInfo[] {
    return this.devs.map((d) => d.info);
  }

  private dev(index: number): NvmlDevice {
    const d = this.devs[index];
    if (!d) throw new Error(`nvml: no device ${index}`);
    return d;
  }

  private async call(name: string, fn: string, ...args: unknown[]): Promise<void> {
    const rc = await callAsync(this.fns[fn]!, ...args);
    if (rc !== NVML_SUCCESS) throw new NvmlError(name, rc, String(this.fns['errorString']!(rc)));
  }

  async lockSmClock(index: number, mhz: number): Promise<void> {
    const d = this.dev(index);
    await this.call('nvmlDeviceSetGpuLockedClocks', 'lockGpu', d.handle, mhz, mhz);
    d.lockedMhz = mhz;
  }

  async resetSmClock(index: number): Promise<void> {
    const d = this.dev(index);
    await this.call('nvmlDeviceResetGpuLockedClocks', 'resetGpu', d.handle);
    d.lockedMhz = 0;
  }

  async lockMemoryClockMax(index: number): Promise<void> {
    const d = this.dev(index);
    const max = d.info.supportedMemoryClocksMhz[0] ?? 0;
    await this.call('nvmlDeviceSetMemoryLockedClocks', 'lockMem', d.handle, max, max);
  }

  async resetMemoryClock(index: number): Promise<void> {
    try {
      await this.call('nvmlDeviceResetMemoryLockedClocks', 'resetMem', this.dev(index).handle);
    } catch (err) {
      // A device that cannot lock its memory clock (seen on an H100 in a VM: both calls answer
      // NOT_SUPPORTED) has nothing to reset; anything else is a real failure.
      if (!(err instanceof NvmlError && err.unsupported)) throw err;
    }
  }

  async getPowerLimitW(index: number): Promise<number> {
    const out = Buffer.alloc(4);
    await this.call('nvmlDeviceGetPowerManagementLimit', 'getLimit', this.dev(index).handle, out);
    return out.readUInt32LE(0) / 1000;
  }

  async setPowerLimitW(index: number, watts: number): Promise<void> {
    await this.call(
      'nvmlDeviceSetPowerManagementLimit',
      'setLimit',
      this.dev(index).handle,
      Math.round(watts * 1000),
    );
  }

  async resetPowerLimit(index: number): Promise<void> {
    const d = this.dev(index);
    await this.setPowerLimitW(index, d.info.defaultPowerLimitW);
  }

  async readEnergyMj(index: number): Promise<number> {
    const d = this.dev(index);
    if (d.info.energyCounterAvailable) {
      const out = Buffer.alloc(8);
      await this.call('nvmlDeviceGetTotalEnergyConsumption', 'energy', d.handle, out);
      return Number(out.readBigUInt64LE(0));
    }
    // No counter: trapezoidal integration of power between reads (documented as an estimate).
    const now = process.hrtime.bigint();
    const w = await this.readPowerW(index);
    if (d.lastPowerNs !== undefined)
      d.integratedMj += ((d.lastPowerW + w) / 2) * (Number(now - d.lastPowerNs) / 1e6);
    d.lastPowerNs = now;
    d.lastPowerW = w;
    return d.integratedMj;
  }

  async readPowerW(index: number): Promise<number> {
    const out = Buffer.alloc(4);
    await this.call('nvmlDeviceGetPowerUsage', 'power', this.dev(index).handle, out);
    return out.readUInt32LE(0) / 1000;
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

/** NVML's two-call pattern for clock lists: ask the count, then fill a buffer of that size. */
function clockList(
  _fns: Record<string, KoffiFunction>,
  call: string,
  fn: (count: Buffer, buf: Buffer | null) => number,
  check: (call: string, rc: number) => void,
): number[] {
  const count = Buffer.alloc(4);
  count.writeUInt32LE(256, 0);
  const buf = Buffer.alloc(256 * 4);
  check(call, fn(count, buf));
  const n = count.readUInt32LE(0);
  return Array.from({ length: n }, (_, i) => buf.readUInt32LE(i * 4));
}
