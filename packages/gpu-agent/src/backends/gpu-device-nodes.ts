import * as fs from 'node:fs';
import * as path from 'node:path';

/** PCI vendor ids of render nodes that mean "an AMD (or NVIDIA) GPU is here". */
const AMD_VENDOR = '0x1002';
const NVIDIA_VENDOR = '0x10de';

/** GPU device nodes present on this host, by vendor (paths as found). */
export interface GpuDeviceNodes {
  nvidia: string[];
  amd: string[];
}

function list(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function vendorOf(sysDrm: string, node: string): string | undefined {
  try {
    return fs.readFileSync(path.join(sysDrm, node, 'device', 'vendor'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Finds the device nodes a GPU driver creates: `/dev/nvidia<N>` (NVIDIA), `/dev/kfd` (AMD ROCm),
 * and `/dev/dri/renderD*` whose PCI vendor (sysfs) is AMD or NVIDIA — a render node of another
 * vendor (an integrated or virtual GPU) is no GPU the agent could control. `root` replaces `/`
 * (a container with the host's /dev and /sys mounted elsewhere, tests).
 */
export function findGpuDeviceNodes(root = '/'): GpuDeviceNodes {
  const dev = path.join(root, 'dev');
  const sysDrm = path.join(root, 'sys', 'class', 'drm');
  const nvidia = list(dev)
    .filter((n) => /^nvidia\d+$/.test(n))
    .map((n) => path.join(dev, n));
  const amd = fs.existsSync(path.join(dev, 'kfd')) ? [path.join(dev, 'kfd')] : [];
  for (const n of list(path.join(dev, 'dri')).filter((x) => /^renderD\d+$/.test(x))) {
    const vendor = vendorOf(sysDrm, n);
    if (vendor === AMD_VENDOR) amd.push(path.join(dev, 'dri', n));
    if (vendor === NVIDIA_VENDOR) nvidia.push(path.join(dev, 'dri', n));
  }
  return { nvidia, amd };
}
