{{- define "ti.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ti.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ti.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "ti.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* selector labels of one component: (dict "root" $ "component" "api") */}}
{{- define "ti.selector" -}}
app.kubernetes.io/name: {{ include "ti.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ti.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "ti.secretName" -}}
{{- default (printf "%s-secrets" (include "ti.fullname" .)) .Values.existingSecret -}}
{{- end -}}

{{- define "ti.kafka" -}}
{{- if .Values.dev.enabled -}}
{{- printf "%s-kafka:9092" (include "ti.fullname" .) -}}
{{- else -}}
{{- required "kafka.bootstrapServers is required (or set dev.enabled for a trial)" .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{- define "ti.redis" -}}
{{- if .Values.dev.enabled -}}
{{- printf "redis://%s-redis:6379/0" (include "ti.fullname" .) -}}
{{- else -}}
{{- required "redis.url is required (or set dev.enabled for a trial)" .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{- define "ti.databaseUrl" -}}
{{- if .Values.dev.enabled -}}
{{- printf "postgresql+psycopg://insights:insights@%s-postgres:5432/trace_insights" (include "ti.fullname" .) -}}
{{- else -}}
{{- .Values.database.url -}}
{{- end -}}
{{- end -}}

{{/* the environment of every Trace Insights container */}}
{{- define "ti.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "ti.fullname" . }}-settings
env:
  - name: TRACE_INSIGHTS_DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "ti.secretName" . }}
        key: {{ .Values.secretKeys.databaseUrl }}
  - name: TRACE_INSIGHTS_AUTH_TOKEN
    valueFrom:
      secretKeyRef:
        name: {{ include "ti.secretName" . }}
        key: {{ .Values.secretKeys.authToken }}
        optional: true
{{- end -}}

{{- define "ti.pod" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir: {}
{{- end -}}

{{/* probes on /health (liveness) and /ready (readiness) of a named port */}}
{{- define "ti.probes" -}}
livenessProbe:
  httpGet:
    path: /health
    port: {{ . }}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
readinessProbe:
  httpGet:
    path: /ready
    port: {{ . }}
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}
