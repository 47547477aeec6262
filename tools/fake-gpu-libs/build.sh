#!/usr/bin/env bash
# Builds the fake driver libraries the FFI tests load: <out>/libnvidia-ml.so.1 and
# <out>/libamd_smi.so (default out: packages/gpu-agent/build/fake-gpu-libs, gitignored).
# Rebuilds only when a source is newer than its library.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../../packages/gpu-agent/build/fake-gpu-libs}"
mkdir -p "$out"
cc="${CC:-gcc}"
build() {
  local src="$1" lib="$2"
  if [ ! -f "$out/$lib" ] || [ "$here/$src" -nt "$out/$lib" ]; then
    "$cc" -shared -fPIC -O1 -Wall -Wextra -Werror -o "$out/$lib.tmp" "$here/$src"
    mv "$out/$lib.tmp" "$out/$lib"
  fi
}
build fake_nvml.c libnvidia-ml.so.1
build fake_amdsmi.c libamd_smi.so
echo "$out"
