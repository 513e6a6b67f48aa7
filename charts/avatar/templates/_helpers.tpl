{{/* Names, labels and the pieces every workload shares. */}}

{{- define "avatar.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "avatar.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "gateway") */}}
{{- define "avatar.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "avatar.image" -}}
{{ printf "%s/avatar-%s:%s" .root.Values.image.registry .component .root.Values.image.tag }}
{{- end -}}

{{- define "avatar.natsUrl" -}}
{{- if .Values.nats.enabled -}}
{{ printf "nats://%s-nats.%s.svc:4222" (include "avatar.fullname" .) .Release.Namespace }}
{{- else -}}
{{ .Values.nats.url }}
{{- end -}}
{{- end -}}

{{/* Environment every service reads: the shared ConfigMap and the S3 credentials. Ends with
     `env:` so that a workload can append its own variables. */}}
{{- define "avatar.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "avatar.fullname" . }}
env:
{{- if eq .Values.storage.backend "s3" }}
  - name: S3_ACCESS_KEY_ID
    valueFrom:
      secretKeyRef:
        name: {{ .Values.storage.s3.credentialsSecret }}
        key: accessKeyId
  - name: S3_SECRET_ACCESS_KEY
    valueFrom:
      secretKeyRef:
        name: {{ .Values.storage.s3.credentialsSecret }}
        key: secretAccessKey
{{- end }}
{{- end -}}

{{/* Volumes of a service: a writable /tmp and, for local storage, the shared /data. */}}
{{- define "avatar.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if eq .Values.storage.backend "local" }}
- name: data
  persistentVolumeClaim:
    claimName: {{ required "storage.local.existingClaim is required with storage.backend=local" .Values.storage.local.existingClaim }}
{{- end }}
{{- end -}}

{{- define "avatar.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if eq .Values.storage.backend "local" }}
- name: data
  mountPath: /data
{{- end }}
{{- end -}}

{{- define "avatar.podSpecCommon" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
