{{/*
Names. herd.name is the chart's name or nameOverride; herd.fullname names
every object of the release, at most 63 characters (a DNS label).
*/}}
{{- define "herd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "herd.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "herd.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "herd.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The labels that select the release's pods; never changed on upgrade. */}}
{{- define "herd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "herd.labels" -}}
{{ include "herd.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "herd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "herd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
herd.port: the port of herd.listen's first address, which the container
port and the Service use. An address without one (a unix socket) cannot be
served through a Service.
*/}}
{{- define "herd.port" -}}
{{- $first := splitList "," .Values.herd.listen | first | trim -}}
{{- $port := regexFind ":[0-9]+$" $first | trimPrefix ":" -}}
{{- if not $port -}}
{{- fail (printf "herd.listen=%q: its first address must end in :PORT (such as :8080 or tcp://0.0.0.0:8080); the container port and the Service use that port" .Values.herd.listen) -}}
{{- end -}}
{{- if eq (int $port) (int .Values.herd.healthPort) -}}
{{- fail (printf "herd.listen=%q and herd.healthPort=%d: the server and herd's probes need different ports" .Values.herd.listen (int .Values.herd.healthPort)) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{/*
herd.gracePeriod: terminationGracePeriodSeconds. After SIGTERM herd keeps
serving for shutdownDelaySeconds, then gives workers shutdownTimeoutSeconds
before it kills them and exits; the kubelet's SIGKILL must come later.
Left empty it is computed with 5 seconds to spare; a value that leaves no
time at all fails the rendering.
*/}}
{{- define "herd.gracePeriod" -}}
{{- $delay := int .Values.herd.shutdownDelaySeconds -}}
{{- $timeout := int .Values.herd.shutdownTimeoutSeconds -}}
{{- $need := add $delay $timeout -}}
{{- $set := .Values.terminationGracePeriodSeconds -}}
{{- if kindIs "invalid" $set -}}
{{- add $need 5 -}}
{{- else if le (int $set) $need -}}
{{- fail (printf "terminationGracePeriodSeconds=%d must be more than herd.shutdownDelaySeconds (%d) + herd.shutdownTimeoutSeconds (%d) = %d, or the kubelet kills herd before its workers have stopped; raise it, lower those two, or leave it null to have it computed (%d)" (int $set) $delay $timeout $need (add $need 5)) -}}
{{- else -}}
{{- int $set -}}
{{- end -}}
{{- end -}}

{{- define "herd.configEnabled" -}}
{{- if .Values.herd.config -}}true{{- end -}}
{{- end -}}
