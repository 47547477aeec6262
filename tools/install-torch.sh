#!/usr/bin/env bash
# Makes `import torch` (CPU) work in the repo venv, for examples/pytorch_pipeline.py and its test.
# PyPI's default Linux torch wheel drags in gigabytes of CUDA libraries, so the practical CPU torch
# here is Debian's python3-torch; it is built for the system CPython 3.11, the same minor version
# as the venv, so a .pth file that APPENDS Debian's dist-packages to the venv's sys.path makes it
# importable without shadowing any pinned package of the venv. Idempotent; needs root for apt.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_python="$root/.venv/bin/python"
[ -x "$venv_python" ] || bash "$root/tools/bootstrap-python.sh"
if "$venv_python" -c 'import torch' 2>/dev/null; then
  "$venv_python" -c 'import torch; print("install-torch: torch", torch.__version__, "already importable")'
  exit 0
fi
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  if ! command -v apt-get >/dev/null; then
    echo "install-torch: no apt-get; install a CPU torch for $("$venv_python" -V) by hand" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends python3-torch >/dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-torch
  }
fi
sys_ver="$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
venv_ver="$("$venv_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$sys_ver" != "$venv_ver" ]; then
  echo "install-torch: Debian's torch is for Python $sys_ver but the venv is $venv_ver" >&2
  exit 1
fi
site="$("$venv_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo /usr/lib/python3/dist-packages > "$site/zz-debian-dist-packages.pth"
"$venv_python" -c 'import torch; print("install-torch: torch", torch.__version__, "from", torch.__file__)'
