{{- define "perseus.labels" -}}
app.kubernetes.io/name: perseus
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "perseus.selector" -}}
app.kubernetes.io/name: perseus
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "perseus.fullname" -}}
{{- printf "%s-perseus" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
