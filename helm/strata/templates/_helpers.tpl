{{/* Names ------------------------------------------------------------- */}}

{{- define "strata.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-wide prefix of every object; kept short so that
     "<fullname>-controller-4" and "<fullname>-bootstrap" stay DNS labels. */}}
{{- define "strata.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "strata.controllerName" -}}{{ include "strata.fullname" . }}-controller{{- end -}}
{{- define "strata.brokerName" -}}{{ include "strata.fullname" . }}-broker{{- end -}}
{{- define "strata.bootstrapName" -}}{{ include "strata.fullname" . }}-bootstrap{{- end -}}

{{- define "strata.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "strata.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels ------------------------------------------------------------ */}}

{{- define "strata.selectorLabels" -}}
app.kubernetes.io/name: {{ include "strata.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "strata.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "strata.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: strata
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Image ------------------------------------------------------------- */}}

{{- define "strata.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Where the Dockerfile puts the binary. */}}
{{- define "strata.binary" -}}/usr/local/bin/strata{{- end -}}

{{/* Addresses --------------------------------------------------------- */}}

{{/* DNS name of controller pod N: <statefulset>-N.<headless service>.<ns>.svc.<domain> */}}
{{- define "strata.controllerHost" -}}
{{- $ctx := index . 0 -}}{{- $i := index . 1 -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "strata.controllerName" $ctx) (int $i) (include "strata.controllerName" $ctx) $ctx.Release.Namespace $ctx.Values.clusterDomain -}}
{{- end -}}

{{/* The voters, ID@HOST:PORT,... with ids = pod ordinals. */}}
{{- define "strata.quorum" -}}
{{- $voters := list -}}
{{- range $i := until (int .Values.controller.replicas) -}}
{{- $voters = append $voters (printf "%d@%s:%d" $i (include "strata.controllerHost" (list $ $i)) (int $.Values.controller.ports.controller)) -}}
{{- end -}}
{{- join "," $voters -}}
{{- end -}}

{{- define "strata.bootstrapAddress" -}}
{{- printf "%s.%s.svc.%s:%d" (include "strata.bootstrapName" .) .Release.Namespace .Values.clusterDomain (int .Values.broker.ports.kafka) -}}
{{- end -}}

{{/* Settings maps -> STRATA_<KEY> env entries. */}}
{{- define "strata.configEnv" -}}
{{- range $k, $v := . }}
- name: {{ printf "STRATA_%s" ($k | upper | replace "-" "_") }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{/* Pod and container security contexts: non-root (the image's nonroot
     user), read-only root filesystem, no privilege escalation, no
     capabilities, the runtime's default seccomp profile. */}}
{{- define "strata.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "strata.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Checks whose failure is a clear message at install time (beyond what
     values.schema.json can say). */}}
{{- define "strata.validate" -}}
{{- if not .Values.objectStore.bucket -}}
{{- fail "objectStore.bucket is required: the S3 bucket that holds every acknowledged record (e.g. --set objectStore.bucket=my-strata-bucket)" -}}
{{- end -}}
{{- if and (eq .Values.objectStore.credentials.mode "irsa") (not .Values.objectStore.credentials.irsaRoleArn) -}}
{{- fail "objectStore.credentials.irsaRoleArn is required with credentials mode irsa (the IAM role the service account assumes); or set objectStore.credentials.mode to secret or ambient" -}}
{{- end -}}
{{- if and (eq .Values.objectStore.credentials.mode "secret") (not .Values.objectStore.credentials.existingSecret) -}}
{{- fail "objectStore.credentials.existingSecret is required with credentials mode secret (a Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)" -}}
{{- end -}}
{{- if and (eq .Values.broker.rack.source "value") (not .Values.broker.rack.value) -}}
{{- fail "broker.rack.value is required with broker.rack.source=value" -}}
{{- end -}}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) -}}
{{- fail (printf "autoscaling.minReplicas (%d) must not exceed autoscaling.maxReplicas (%d)" (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled -}}
{{- fail "autoscaling.enabled and keda.enabled are exclusive: KEDA creates its own HPA for the brokers; turn one off" -}}
{{- end -}}
{{- if and (eq (int .Values.broker.rollingUpdate.maxSurge) 0) (eq (int .Values.broker.rollingUpdate.maxUnavailable) 0) -}}
{{- fail "broker.rollingUpdate: maxSurge and maxUnavailable cannot both be 0" -}}
{{- end -}}
{{- range $k, $_ := merge (dict) .Values.config .Values.controller.config .Values.broker.config -}}
{{- if not (regexMatch "^[a-z][a-z0-9]*(-[a-z0-9]+)*$" $k) -}}
{{- fail (printf "config key %q is not a strata serve flag name (kebab-case without dashes prefix, e.g. wal-flush-ms)" $k) -}}
{{- end -}}
{{- if has $k (list "roles" "node-id" "broker-id" "controller-quorum" "controller-listen" "kafka-listen" "http-listen" "advertised-host" "data-dir" "meta-dir" "object-store" "rack" "s3-endpoint" "s3-region" "s3-path-style") -}}
{{- fail (printf "config key %q is set by the chart itself; use the chart's own value for it (see README.md)" $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A byte quantity (plain number or with a Ki/Mi/Gi/K/M/G suffix) as a
     plain integer, for places that take no Kubernetes quantity. */}}
{{- define "strata.bytesQuantity" -}}
{{- $s := toString . -}}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "K" 1000 "M" 1000000 "G" 1000000000 -}}
{{- $out := "" -}}
{{- range $suffix := list "Ki" "Mi" "Gi" "K" "M" "G" -}}
{{- if and (not $out) (hasSuffix $suffix $s) -}}
{{- $out = mul (int64 (trimSuffix $suffix $s)) (get $units $suffix) | toString -}}
{{- end -}}
{{- end -}}
{{- default $s $out -}}
{{- end -}}

{{/* Checks of the checkov scanner this chart does not meet on purpose,
     each with its reason (tests/k8s runs checkov on the rendered chart). */}}
{{- define "strata.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_11=No CPU limit by default - CFS throttling adds latency spikes to produce and fetch; CPU requests drive scheduling and the HPA. Set resources.limits.cpu to cap it.
checkov.io/skip2: CKV_K8S_15=IfNotPresent by default - pods start without a registry round trip when the pool scales; pin the image by image.digest, or set image.pullPolicy Always.
checkov.io/skip3: CKV_K8S_43=The default image reference is the release tag; image.digest pins it by digest.
{{- if eq .Values.objectStore.credentials.mode "secret" }}
checkov.io/skip4: CKV_K8S_35=The AWS SDK credential chain reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment; prefer credentials mode irsa.
{{- end }}
{{- end -}}
