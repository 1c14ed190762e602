{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "pacer-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "pacer-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pacer-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pacer-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pacer-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "pacer-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "pacer-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pacer-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pacer-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The rules the operator needs, exactly: see operator/src/controller.rs and leader.rs. */}}
{{- define "pacer-operator.rules" -}}
# Watch PhpAppServers; write their status; set blockOwnerDeletion on owned objects.
- apiGroups: ["pacer.dev"]
  resources: ["phpappservers"]
  verbs: ["list", "watch"]
- apiGroups: ["pacer.dev"]
  resources: ["phpappservers/status"]
  verbs: ["patch"]
- apiGroups: ["pacer.dev"]
  resources: ["phpappservers/finalizers"]
  verbs: ["update"]
# Owned objects: watched for drift and readiness, written by server-side apply (which
# needs `create` as well as `patch` when the object does not exist yet).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch"]
# The app's pods: watched so that a pod that cannot run turns Ready False at once (with
# the kubelet's reason); their IPs for metrics, OOM kills from their container statuses;
# memory limits are delivered by in-place resize.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["pods/resize"]
  verbs: ["patch"]
# Autoscalers that count an app's pods (HPA, KEDA's ScaledObject): seen, never written.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["list"]
{{- if .Values.prometheus.readSecrets }}
# tuning.metrics.bearerTokenSecret: the token for the app's Prometheus.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
# Events for every tuning change.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* The namespaces watched: watchNamespace and watchNamespaces together; empty: all. */}}
{{- define "pacer-operator.watchedNamespaces" -}}
{{- $all := .Values.watchNamespaces | default list -}}
{{- if .Values.watchNamespace }}{{ $all = append $all .Values.watchNamespace }}{{ end -}}
{{- $all | uniq | join "," -}}
{{- end }}

{{/* The pacer image injected into the apps' pods: the chart's own release of pacer. */}}
{{- define "pacer-operator.sidecarImage" -}}
{{- default (printf "%s:%s" .Values.image.repository .Chart.AppVersion) .Values.sidecar.image }}
{{- end }}
