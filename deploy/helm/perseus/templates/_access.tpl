{{- /*
Access for the profiler and the optimizer. They listen on 0.0.0.0, and the code refuses any
non-loopback listener without TLS and a token file (packages/service-kit/src/access.ts), so both
Secrets are required: `helm template` stops here with a message instead of rendering pods that
cannot start.
Token files: a Secret volume with fsGroup is group-readable (Kubernetes adds g+r), and the services
refuse a token file that group or others can read; an init container copies it into a Memory
emptyDir with mode 0600, owned by the service's user.
*/ -}}
{{- define "perseus.access.tlsSecret" -}}
{{- required "access.tlsSecretName is required: the profiler and optimizer listen on 0.0.0.0 and refuse to start without TLS. Create a kubernetes.io/tls Secret whose certificate names their Services (see deploy/helm/README.md) and pass --set access.tlsSecretName=<name>" .Values.access.tlsSecretName -}}
{{- end -}}

{{- define "perseus.access.tokensSecret" -}}
{{- required "access.tokensSecretName is required: the profiler and optimizer listen on 0.0.0.0 and refuse to start without a token file. Create a Secret with keys \"profiler\" and \"optimizer\" (token files, see deploy/helm/README.md) and pass --set access.tokensSecretName=<name>" .Values.access.tokensSecretName -}}
{{- end -}}

{{- /* Environment of a control container; argument: dict "root" . "role" "profiler"|"optimizer". */ -}}
{{- define "perseus.access.env" -}}
{{- $x := .root.Values.access -}}
- name: PERSEUS_TLS_CERT
  value: /etc/perseus/tls/tls.crt
- name: PERSEUS_TLS_KEY
  value: /etc/perseus/tls/tls.key
{{- if $x.caKey }}
# The image's health check (exec probes: a kubelet gRPC probe cannot speak TLS) trusts this CA.
- name: PERSEUS_HEALTHCHECK_TLS_CA
  value: /etc/perseus/tls/{{ $x.caKey }}
{{- end }}
{{- if $x.mutualTls }}
- name: PERSEUS_TLS_CLIENT_CA
  value: /etc/perseus/tls/{{ required "access.mutualTls needs access.caKey (the key of the client CA in the TLS Secret)" $x.caKey }}
{{- end }}
- name: PERSEUS_{{ upper .role }}_TOKEN_FILE
  value: /run/perseus-tokens/tokens
{{- if eq .role "optimizer" }}
# The optimizer's own link to the profiler (a TLS listener that wants a token): the CA that signed
# the profiler's certificate (caKey, or tls.crt itself when self-signed) and a 0600 copy of its token.
- name: PERSEUS_OPTIMIZER_PROFILER_TLS_CA
  value: /etc/perseus/tls/{{ $x.caKey | default "tls.crt" }}
- name: PERSEUS_OPTIMIZER_PROFILER_TOKEN_FILE
  value: /run/perseus-tokens/profiler-token
{{- end }}
{{- end -}}

{{- define "perseus.access.initContainer" -}}
- name: tokens
  image: "{{ .root.Values.image.control }}:{{ .root.Values.image.tag }}"
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  {{- if eq .role "optimizer" }}
  command: ["/bin/sh", "-c", "umask 077 && cat /etc/perseus/token-secret/tokens > /run/perseus-tokens/tokens && cat /etc/perseus/token-secret/profiler-token > /run/perseus-tokens/profiler-token"]
  {{- else }}
  command: ["/bin/sh", "-c", "umask 077 && cat /etc/perseus/token-secret/tokens > /run/perseus-tokens/tokens"]
  {{- end }}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: ["ALL"]
  resources:
    requests: { cpu: 10m, memory: 16Mi }
    limits: { cpu: 100m, memory: 64Mi }
  volumeMounts:
    - name: token-secret
      mountPath: /etc/perseus/token-secret
      readOnly: true
    - name: tokens
      mountPath: /run/perseus-tokens
{{- end -}}

{{- define "perseus.access.volumeMounts" -}}
- name: tls
  mountPath: /etc/perseus/tls
  readOnly: true
- name: tokens
  mountPath: /run/perseus-tokens
  readOnly: true
{{- end -}}

{{- define "perseus.access.volumes" -}}
- name: tls
  secret:
    secretName: {{ include "perseus.access.tlsSecret" .root }}
    defaultMode: 0440
- name: token-secret
  secret:
    secretName: {{ include "perseus.access.tokensSecret" .root }}
    defaultMode: 0440
    items:
      - key: {{ index .root.Values.access.tokenKeys .role | quote }}
        path: tokens
      {{- if eq .role "optimizer" }}
      - key: {{ .root.Values.access.tokenKeys.optimizerToProfiler | quote }}
        path: profiler-token
      {{- end }}
- name: tokens
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end -}}

{{- define "perseus.access.probes" -}}
readinessProbe:
  exec:
    command: ["node", "/opt/perseus/healthcheck.cjs"]
  periodSeconds: 10
livenessProbe:
  exec:
    command: ["node", "/opt/perseus/healthcheck.cjs"]
  initialDelaySeconds: 20
  periodSeconds: 20
{{- end -}}
