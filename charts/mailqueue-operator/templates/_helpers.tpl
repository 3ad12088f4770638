{{/* Name of every object of this release. */}}
{{- define "mailqueue-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mailqueue-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mailqueue-operator.labels" -}}
{{ include "mailqueue-operator.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "mailqueue-operator.serviceAccountName" -}}
{{- default (include "mailqueue-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "mailqueue-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "mailqueue-operator.runnerImage" -}}
{{- default (include "mailqueue-operator.image" .) .Values.runner.image -}}
{{- end -}}

{{/* Namespaces where runner pods live: given, or the watched one, or the release's. */}}
{{- define "mailqueue-operator.runnerNamespaces" -}}
{{- if .Values.runner.namespaces -}}
{{- toJson .Values.runner.namespaces -}}
{{- else -}}
{{- toJson (list (default .Release.Namespace .Values.watchNamespace)) -}}
{{- end -}}
{{- end -}}
