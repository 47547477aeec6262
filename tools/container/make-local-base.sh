#!/usr/bin/env bash
# Builds a local stand-in for the official Node image when registries are unreachable: a minimal
# Debian (debootstrap --variant=minbase, the release of this machine) plus this machine's node
# binary, headers and npm in /usr/local, imported into podman as $PERSEUS_BASE_IMAGE
# (default localhost/perseus-test-base:latest). Skips the work when that image exists.
set -euo pipefail
image="${PERSEUS_BASE_IMAGE:-localhost/perseus-test-base:latest}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf}"
podman=(podman --runtime runc)
if "${podman[@]}" image exists "$image"; then
  echo "make-local-base: $image exists"
  exit 0
fi
suite="$(. /etc/os-release && echo "$VERSION_CODENAME")"
mirror="${PERSEUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
work="$(mktemp -d "${TMPDIR:-/tmp}/perseus-base.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; exit 1; }
node_bin="$(readlink -f "$(command -v node)")"
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
install -D -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules" "$rootfs/usr/local/include"
# Headers too, as the official image has them (node-gyp builds better-sqlite3 against them).
cp -a "$(dirname "$(dirname "$node_bin")")/include/node" "$rootfs/usr/local/include/node"
cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
# As in the official image: apt lists and caches are not part of the base.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | "${podman[@]}" import --change 'CMD ["node"]' - "$image" >/dev/null
echo "make-local-base: $image from debian $suite minbase + node $("$node_bin" --version) + npm $(npm --version)"
