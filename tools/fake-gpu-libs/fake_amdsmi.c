/*
 * A fake libamd_smi.so for tests: the AMD SMI entry points the Perseus agent binds (amdsmi.h of
 * ROCm 6.x: handles are opaque pointers; frequencies in Hz; power caps in µW), a deterministic GPU
 * model, and a call log. Not AMD code; written for the Perseus test suite.
 *
 * Environment: FAKE_AMDSMI_LOG=<path>, FAKE_AMDSMI_DEVICES=<n> (default 2).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AMDSMI_STATUS_SUCCESS 0
#define AMDSMI_STATUS_INVAL 1
#define AMDSMI_STATUS_NOT_INIT 32
#define MAX_DEV 8

typedef struct {
  bool has_deep_sleep;
  uint32_t num_supported;
  uint32_t current;
  uint64_t frequency[33];
} amdsmi_frequencies_t;

typedef struct {
  uint64_t power_cap, default_power_cap, dpm_cap, min_power_cap, max_power_cap;
} amdsmi_power_cap_info_t;

typedef struct {
  int index;
  uint64_t sclk_min, sclk_max;
  int perf_level; /* 0 = auto, 1 = manual (a clock range is set) */
  uint64_t cap_uw;
  uint64_t energy_acc;
} fake_gpu;

static int socket_token;
static fake_gpu gpus[MAX_DEV];
static int initialized = 0;

/* Test-only setters: jest gives tests a copy of process.env that native getenv() never sees. */
static char log_path[4096];
void fake_amdsmi_set_log(const char *path) { snprintf(log_path, sizeof log_path, "%s", path ? path : ""); }

static void logcall(const char *fmt, ...) {
  const char *path = log_path[0] ? log_path : getenv("FAKE_AMDSMI_LOG");
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

static uint32_t count(void) {
  const char *n = getenv("FAKE_AMDSMI_DEVICES");
  int c = n ? atoi(n) : 2;
  return c < 0 ? 0 : (c > MAX_DEV ? MAX_DEV : (uint32_t)c);
}

static int valid(fake_gpu *g) { return initialized && g >= gpus && g < gpus + count(); }

int amdsmi_init(uint64_t flags) {
  for (int i = 0; i < MAX_DEV; i++) {
    gpus[i].index = i;
    gpus[i].cap_uw = 300000000ULL;
    gpus[i].energy_acc = 0;
    gpus[i].perf_level = 0;
  }
  initialized = 1;
  logcall("amdsmi_init %llu", (unsigned long long)flags);
  return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_shut_down(void) {
  initialized = 0;
  logcall("amdsmi_shut_down");
  return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_get_socket_handles(uint32_t *n, void **handles) {
  if (!initialized) return AMDSMI_STATUS_NOT_INIT;
  if (handles && *n >= 1) handles[0] = &socket_token;
  *n = 1;
  return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_get_processor_handles(void *socket, uint32_t *n, void **handles) {
  if (!initialized || socket != &socket_token) return AMDSMI_STATUS_INVAL;
  uint32_t c = count();
  if (handles) {
    for (uint32_t i = 0; i < c && i < *n; i++) handles[i] = &gpus[i];
  }
  *n = c;
  return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_get_gpu_device_uuid(fake_gpu *g, uint32_t *len, char *uuid) {
  if (!valid(g)) return AMDSMI_STATUS_INVAL;
  snprintf(uuid, *len, "a3ff74a1-0000-1000-80%02d-000000000000", g->index);
  return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_get_gpu_device_bdf(fake_gpu *g, uint64_t *bdf) {
  if (!valid(g)) return AMDSMI_STATUS_INVAL;
  /* function:3 | device:5 | bus:8 | domain:48 — bus 0xc1 + index, device 0, function 0. */
  *bdf = ((uint64_t)(0xc1 + g->index) << 8);
  return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_get_clk_freq(fake_gpu *g, int type, amdsmi_frequencies_t *f) {
  if (!valid(g) || type != 0) return AMDSMI_STATUS_INVAL;
  memset(f, 0, sizeof *f);
  f->num_supported = 3;
  f->frequency[0] = 500000000ULL;
  f->frequency[1] = 1200000000ULL;
  f->frequency[2] = 2100000000ULL;
  f->current = 2;
  return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_set_gpu_clk_range(fake_gpu *g, uint64_t lo, uint64_t hi, int type) {
  if (!valid(g)) return AMDSMI_STATUS_INVAL;
  logcall("amdsmi_set_gpu_clk_range %d %llu %llu %d", g->index, (unsigned long long)lo, (unsigned long long)hi, type);
  if (lo > hi || type != 0) return AMDSMI_STATUS_INVAL;
  g->sclk_min = lo;
  g->sclk_max = hi;
  g->perf_level = 1;
  return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_set_gpu_perf_level(fake_gpu *g, int level) {
  if (!valid(g)) return AMDSMI_STATUS_INVAL;
  logcall("amdsmi_set_gpu_perf_level %d %d", g->index, level);
  g->perf_level = level;
  if (level == 0) g->sclk_min = g->sclk_max = 0;
  return AMDSMI_STATUS_SUCCESS;
}

/* Each read advances the accumulator by 65536 ticks of 15.259 µJ (≈ 1 J). */
int amdsmi_get_energy_count(fake_gpu *g, uint64_t *acc, float *resolution, uint64_t *ts) {
  if (!valid(g)) return AMDSMI_STATUS_INVAL;
  g->energy_acc += 65536;
  *acc = g->energy_acc;
  *resolution = 15.259f;
  *ts = 0;
  return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_get_power_cap_info(fake_gpu *g, uint32_t sensor, amdsmi_power_cap_info_t *info) {
  if (!valid(g) || sensor != 0) return AMDSMI_STATUS_INVAL;
  info->power_cap = g->cap_uw;
  info->default_power_cap = 300000000ULL;
  info->dpm_cap = 0;
  info->min_power_cap = 100000000ULL;
  info->max_power_cap = 300000000ULL;
  return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_set_power_cap(fake_gpu *g, uint32_t sensor, uint64_t cap) {
  if (!valid(g) || sensor != 0) return AMDSMI_STATUS_INVAL;
  logcall("amdsmi_set_power_cap %d %llu", g->index, (unsigned long long)cap);
  g->cap_uw = cap;
  return AMDSMI_STATUS_SUCCESS;
}

/* Test-only. */
uint64_t fake_amdsmi_sclk_max(uint32_t i) { return i < MAX_DEV ? gpus[i].sclk_max : 0; }
int fake_amdsmi_perf_level(uint32_t i) { return i < MAX_DEV ? gpus[i].perf_level : -1; }
