{{/*
Labels every object of the chart carries. The first block is config/default's; the Helm-only
labels (helm.sh/chart, app.kubernetes.io/managed-by, app.kubernetes.io/instance) are the only
difference hack/check-chart.sh ignores. Pod templates and selectors get none of the Helm-only
labels: selectors are immutable, and the pods stay as config/default makes them.
*/}}
{{- define "netheal.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of a component's objects: netheal.labels with (dict "ctx" $ "component" "operator"). */}}
{{- define "netheal.labels" -}}
app.kubernetes.io/name: netheal
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{ include "netheal.helmLabels" .ctx }}
{{- end }}

{{/* An image reference: netheal.image with (dict "image" .Values.operator.image "ctx" $). */}}
{{- define "netheal.image" -}}
{{ .image.repository }}:{{ .image.tag | default .ctx.Chart.AppVersion }}
{{- end }}

{{/* The node-fixer service account as the API server names it (the admission policy matches it). */}}
{{- define "netheal.nodeFixerUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:netheal-node-fixer
{{- end }}
