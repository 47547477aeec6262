#!/usr/bin/env bash
# Validates the Helm chart: `helm template` with the bare defaults fails naming the required access
# Secrets; `helm lint`; `helm template` with the default values (+ those names) and with every
# optional part on (perseus/ci/full-values.yaml); every rendered object and the example Job checked
# by kubeconform (strict) against JSON schemas generated from the real Kubernetes OpenAPI spec
# (schemas/<version>, see schemas/generate.py); then check_rendered.py: socket path, ports and
# PERSEUS_* names agree with the code. The ServiceMonitor (a Prometheus Operator CRD, not part of
# Kubernetes' schema) is skipped by kubeconform; its fields are rendered from values only.
# helm and kubeconform are built from the Go module proxy on first use (needs go) into
# ${PERSEUS_TOOLS_BIN:-~/.cache/perseus-tools/bin}.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
k8s_version="v1.37.2"
bin="${PERSEUS_TOOLS_BIN:-$HOME/.cache/perseus-tools/bin}"
export PATH="$bin:$PATH"
mkdir -p "$bin"
want_tool() {
  local name="$1" module="$2"
  command -v "$name" >/dev/null && return 0
  command -v go >/dev/null || { echo "test-chart: $name missing and no go to build it" >&2; exit 1; }
  echo "test-chart: building $name from $module" >&2
  GOBIN="$bin" go install "$module"
}
want_tool helm helm.sh/helm/v3/cmd/helm@v3.22.0
want_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0

work="$(mktemp -d "${TMPDIR:-/tmp}/perseus-chart.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chart="$here/perseus"
# The defaults alone must fail, naming the Secret the profiler and optimizer need to start.
if helm template perseus "$chart" --namespace perseus >/dev/null 2>"$work/err"; then
  echo "test-chart: FAIL: the default values rendered without access.tlsSecretName" >&2; exit 1
fi
grep -q 'access.tlsSecretName is required' "$work/err" ||
  { echo "test-chart: FAIL: unclear error without access.tlsSecretName:" >&2; cat "$work/err" >&2; exit 1; }
if helm template perseus "$chart" --set access.tlsSecretName=t >/dev/null 2>"$work/err"; then
  echo "test-chart: FAIL: rendered without access.tokensSecretName" >&2; exit 1
fi
grep -q 'access.tokensSecretName is required' "$work/err" ||
  { echo "test-chart: FAIL: unclear error without access.tokensSecretName:" >&2; cat "$work/err" >&2; exit 1; }
echo "test-chart: the bare defaults fail: 'access.tlsSecretName is required…', then 'access.tokensSecretName is required…'"
# "default" = the default values plus the two required Secret names (perseus/ci/required-values.yaml).
required=(-f "$chart/ci/required-values.yaml")
helm lint --strict "$chart" "${required[@]}" >/dev/null
helm lint --strict "$chart" -f "$chart/ci/full-values.yaml" >/dev/null
helm template perseus "$chart" --namespace perseus "${required[@]}" >"$work/default.yaml"
helm template perseus "$chart" --namespace perseus -f "$chart/ci/full-values.yaml" >"$work/full.yaml"
for set in default full; do
  kinds="$(grep -h '^kind:' "$work/$set.yaml" | sort | uniq -c | awk '{printf "%s %s, ", $1, $3}')"
  echo "test-chart: $set values render ${kinds%, }"
  kubeconform -strict -summary -skip ServiceMonitor \
    -schema-location "$here/schemas/$k8s_version/{{.ResourceKind}}{{.KindSuffix}}.json" \
    "$work/$set.yaml"
done
kubeconform -strict -summary \
  -schema-location "$here/schemas/$k8s_version/{{.ResourceKind}}{{.KindSuffix}}.json" \
  "$here/examples/training-job.yaml"
python3 "$here/check_rendered.py" "$work/default.yaml" "$here/examples/training-job.yaml" "$root"
python3 "$here/check_rendered.py" "$work/full.yaml" "$here/examples/training-job.yaml" "$root"
echo "test-chart: OK (Kubernetes $k8s_version schemas)"
