{{- define "konsumerator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "konsumerator.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Never app.kubernetes.io/managed-by=konsumerator: that label marks what the operator manages. */}}
{{- define "konsumerator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "konsumerator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "konsumerator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "konsumerator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "konsumerator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "konsumerator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespace whose ConfigMaps guest mode manages. */}}
{{- define "konsumerator.guestNamespace" -}}
{{- default .Release.Namespace .Values.guest.namespace }}
{{- end }}
