# Sourced by the run-*-packed.sh scripts (not run on its own), on a GPU machine without Node.js or
# network. Expects $repo (the repository root); each function returns non-zero when it cannot do
# its part.
#   packed_node    puts the packed node (./.devpack, made by pack.sh) on PATH
#   packed_wheels  installs ./.whl/*.whl (grpcio, protobuf for that machine's Python), if any, into
#                  /tmp/site and puts it on PYTHONPATH

packed_node() {
  [ -f "$repo/.devpack/node.xz" ] || { echo "packed-env: $repo/.devpack missing (run tools/device-check/pack.sh first)" >&2; return 2; }
  mkdir -p /tmp/perseus-node && xz -dc "$repo/.devpack/node.xz" > /tmp/perseus-node/node && chmod +x /tmp/perseus-node/node || return 2
  export PATH="/tmp/perseus-node:$PATH"
}

packed_wheels() {
  compgen -G "$repo/.whl/*.whl" >/dev/null || return 0
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$repo"/.whl/*.whl || return 2
  export PYTHONPATH=/tmp/site
}
