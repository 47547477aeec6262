/*
 * A fake libnvidia-ml.so.1 for tests: the NVML entry points the Perseus agent binds, with the real
 * signatures (nvml.h), a small deterministic GPU model, and a call log so tests can assert exactly
 * which driver calls the agent made. Not NVIDIA code; written for the Perseus test suite.
 *
 * Environment: FAKE_NVML_LOG=<path> (append one line per call), FAKE_NVML_DEVICES=<n> (default 2),
 * FAKE_NVML_NO_ENERGY=1 (energy counter NOT_SUPPORTED, as on pre-Volta GPUs),
 * FAKE_NVML_NO_MEMLOCK=1 (memory-clock lock/reset NOT_SUPPORTED, as seen on an H100 in a VM).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define MAX_DEV 8

typedef struct {
  int index;
  unsigned locked_min, locked_max;
  unsigned mem_locked;
  unsigned power_limit_mw;
  unsigned long long energy_mj;
} fake_device;

typedef struct {
  char busIdLegacy[16];
  unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
  char busId[32];
} nvmlPciInfo_t;

static fake_device devices[MAX_DEV];
static int initialized = 0;

/* Test-only setters: jest gives tests a copy of process.env that native getenv() never sees. */
static char log_path[4096];
static int no_energy = -1;
void fake_nvml_set_log(const char *path) { snprintf(log_path, sizeof log_path, "%s", path ? path : ""); }
void fake_nvml_set_no_energy(int on) { no_energy = on; }
static int no_memlock = -1;
void fake_nvml_set_no_memlock(int on) { no_memlock = on; }
static int memlock_unsupported(void) { return no_memlock == 1 || (no_memlock == -1 && getenv("FAKE_NVML_NO_MEMLOCK")); }

static void logcall(const char *fmt, ...) {
  const char *path = log_path[0] ? log_path : getenv("FAKE_NVML_LOG");
  if (!path) return;
  FILE *f = fopen(path, "a");
  if (!f) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fputc('\n', f);
  fclose(f);
}

static unsigned count(void) {
  const char *n = getenv("FAKE_NVML_DEVICES");
  int c = n ? atoi(n) : 2;
  return c < 0 ? 0 : (c > MAX_DEV ? MAX_DEV : (unsigned)c);
}

static int valid(fake_device *d) { return initialized && d >= devices && d < devices + count(); }

int nvmlInit_v2(void) {
  for (int i = 0; i < MAX_DEV; i++) {
    devices[i].index = i;
    devices[i].power_limit_mw = 400000;
    devices[i].energy_mj = 1000000ULL * (unsigned long long)(i + 1);
  }
  initialized = 1;
  logcall("nvmlInit_v2");
  return NVML_SUCCESS;
}

int nvmlShutdown(void) {
  initialized = 0;
  logcall("nvmlShutdown");
  return NVML_SUCCESS;
}

const char *nvmlErrorString(int r) {
  switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    default: return "Unknown Error";
  }
}

int nvmlDeviceGetCount_v2(unsigned *c) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  *c = count();
  return NVML_SUCCESS;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned i, fake_device **out) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  if (i >= count()) return NVML_ERROR_INVALID_ARGUMENT;
  *out = &devices[i];
  return NVML_SUCCESS;
}

int nvmlDeviceGetUUID(fake_device *d, char *buf, unsigned len) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  snprintf(buf, len, "GPU-fa4e0000-0000-4000-8000-%012d", d->index);
  return NVML_SUCCESS;
}

int nvmlDeviceGetName(fake_device *d, char *buf, unsigned len) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  snprintf(buf, len, "Fake NVIDIA A100-SXM4-40GB");
  return NVML_SUCCESS;
}

int nvmlDeviceGetPciInfo_v3(fake_device *d, nvmlPciInfo_t *pci) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  memset(pci, 0, sizeof *pci);
  pci->bus = 0x07 + (unsigned)d->index;
  snprintf(pci->busId, sizeof pci->busId, "00000000:%02X:00.0", pci->bus);
  return NVML_SUCCESS;
}

static const unsigned MEM_CLOCKS[] = {1215, 405};

int nvmlDeviceGetSupportedMemoryClocks(fake_device *d, unsigned *n, unsigned *clocks) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  if (*n < 2) { *n = 2; return NVML_ERROR_INSUFFICIENT_SIZE; }
  *n = 2;
  memcpy(clocks, MEM_CLOCKS, sizeof MEM_CLOCKS);
  return NVML_SUCCESS;
}

/* 1410 down to 210 MHz in 15 MHz steps at the top memory clock (81 clocks); 2 clocks at the low one. */
int nvmlDeviceGetSupportedGraphicsClocks(fake_device *d, unsigned mem, unsigned *n, unsigned *clocks) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned want = mem == 1215 ? 81 : 2;
  if (*n < want) { *n = want; return NVML_ERROR_INSUFFICIENT_SIZE; }
  *n = want;
  for (unsigned i = 0; i < want; i++) clocks[i] = mem == 1215 ? 1410 - 15 * i : 405 - 195 * i;
  logcall("nvmlDeviceGetSupportedGraphicsClocks %d %u", d->index, mem);
  return NVML_SUCCESS;
}

int nvmlDeviceSetGpuLockedClocks(fake_device *d, unsigned lo, unsigned hi) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  logcall("nvmlDeviceSetGpuLockedClocks %d %u %u", d->index, lo, hi);
  if (lo > hi || hi > 1410 || lo < 210) return NVML_ERROR_INVALID_ARGUMENT;
  d->locked_min = lo;
  d->locked_max = hi;
  return NVML_SUCCESS;
}

int nvmlDeviceResetGpuLockedClocks(fake_device *d) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  logcall("nvmlDeviceResetGpuLockedClocks %d", d->index);
  d->locked_min = d->locked_max = 0;
  return NVML_SUCCESS;
}

int nvmlDeviceSetMemoryLockedClocks(fake_device *d, unsigned lo, unsigned hi) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  logcall("nvmlDeviceSetMemoryLockedClocks %d %u %u", d->index, lo, hi);
  if (memlock_unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  d->mem_locked = hi;
  return NVML_SUCCESS;
}

int nvmlDeviceResetMemoryLockedClocks(fake_device *d) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  logcall("nvmlDeviceResetMemoryLockedClocks %d", d->index);
  if (memlock_unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  d->mem_locked = 0;
  return NVML_SUCCESS;
}

int nvmlDeviceGetPowerManagementLimit(fake_device *d, unsigned *mw) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  *mw = d->power_limit_mw;
  return NVML_SUCCESS;
}

int nvmlDeviceSetPowerManagementLimit(fake_device *d, unsigned mw) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  logcall("nvmlDeviceSetPowerManagementLimit %d %u", d->index, mw);
  if (mw < 100000 || mw > 400000) return NVML_ERROR_INVALID_ARGUMENT;
  d->power_limit_mw = mw;
  return NVML_SUCCESS;
}

int nvmlDeviceGetPowerManagementDefaultLimit(fake_device *d, unsigned *mw) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  *mw = 400000;
  return NVML_SUCCESS;
}

int nvmlDeviceGetPowerManagementLimitConstraints(fake_device *d, unsigned *lo, unsigned *hi) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  *lo = 100000;
  *hi = 400000;
  return NVML_SUCCESS;
}

/* Each read advances the counter by 250 mJ: monotonic and deterministic. */
int nvmlDeviceGetTotalEnergyConsumption(fake_device *d, unsigned long long *mj) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  if (no_energy == 1 || (no_energy == -1 && getenv("FAKE_NVML_NO_ENERGY"))) return NVML_ERROR_NOT_SUPPORTED;
  d->energy_mj += 250;
  *mj = d->energy_mj;
  return NVML_SUCCESS;
}

int nvmlDeviceGetPowerUsage(fake_device *d, unsigned *mw) {
  if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
  *mw = 250000;
  return NVML_SUCCESS;
}

/* Test-only: the SM clock lock of a device as the "driver" holds it (not part of NVML). */
unsigned fake_nvml_locked_max(unsigned i) { return i < MAX_DEV ? devices[i].locked_max : 0; }
unsigned fake_nvml_mem_locked(unsigned i) { return i < MAX_DEV ? devices[i].mem_locked : 0; }
