{{/*
Naming and labels: the `helm create` conventions.
*/}}

{{- define "app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. With release name "app" (the local loop and e2e
suite) it is "app": the Service is reachable as http://app.
*/}}
{{- define "app.fullname" -}}
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

{{- define "app.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object. Call with (dict "context" $ "component" "server"). The version is
the app image's, unless "version" names the version of what the object runs instead (the
dev database: a label that followed the app's tag would restart it on every upgrade).
*/}}
{{- define "app.labels" -}}
helm.sh/chart: {{ include "app.chart" .context }}
{{ include "app.selectorLabels" . }}
{{- with (hasKey . "version" | ternary .version (include "app.version" .context)) }}
app.kubernetes.io/version: {{ . | trunc 63 | trimSuffix "-" | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: {{ include "app.name" .context }}
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels. The component keeps the migration Job's and the helm test's pods out
of the Deployment's and the Service's selectors.
*/}}
{{- define "app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "app.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Selects every pod of the release (server, migration, helm test, dev database): the
NetworkPolicy's scope.
*/}}
{{- define "app.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "app.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "app.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: only an image that exists, named by digest, by tag, or both
(`repo:tag@digest`: the runtime pulls the digest, the tag tells a reader which release
it is). There is no fallback to appVersion: that tag is never built (`make image` tags
the git revision), and a guess would label every pod with a version that is not running.
app.validate refuses a render with neither.
*/}}
{{- define "app.image" -}}
{{- if and .Values.image.tag .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository (toString .Values.image.tag) .Values.image.digest }}
{{- else if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (toString .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
app.kubernetes.io/version: the version actually deployed. The image tag when there is one
(a release passes both tag and digest), else image.version (what a GitOps values file
pins next to a bare digest). Nothing at all rather than a guess: a digest alone is not a
version, and appVersion only says which release published the chart.
*/}}
{{- define "app.version" -}}
{{- with (toString .Values.image.tag) }}
{{- . | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- with .Values.image.version }}{{ toString . | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}
{{- end }}

{{- define "app.configMapName" -}}
{{- include "app.fullname" . }}
{{- end }}

{{/*
The Secret holding the database URL: the operator's existingSecret, or the dev-only
Secret this chart renders next to its dev database.
*/}}
{{- define "app.databaseSecretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- include "app.devDatabase.fullname" . }}
{{- end }}
{{- end }}

{{- define "app.databaseSecretKey" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecretKey }}
{{- else -}}
DATABASE_URL
{{- end }}
{{- end }}

{{- define "app.devDatabase.fullname" -}}
{{- printf "%s-postgresql" (include "app.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Where the database credentials are mounted: the URL file (DATABASE_URL_FILE), or a
basic-auth Secret's `username` and `password` files (DATABASE_USER_FILE,
DATABASE_PASSWORD_FILE). Never in the pod's environment (`kubectl describe`, crash dumps).
*/}}
{{- define "app.databaseUrlDir" -}}
/run/secrets/database
{{- end }}

{{/*
How a container reaches the database: "url" (a Secret holding the URL) or "credentials"
(database.host, .port, .name and the basic-auth Secret database.credentialsSecret). The
migration Job uses migration.existingSecret when set: the role that owns the schema,
straight to the primary (never through a transaction pooler: migrate holds a session-level
advisory lock). Call with (dict "context" $ "migration" true|false).
*/}}
{{- define "app.databaseConnection" -}}
{{- if and .migration .context.Values.migration.existingSecret -}}
url
{{- else if .context.Values.database.credentialsSecret -}}
credentials
{{- else -}}
url
{{- end }}
{{- end }}

{{/*
The connection's settings (service/config.py), tied to the mounts below.
*/}}
{{- define "app.databaseEnv" -}}
{{- $database := .context.Values.database }}
{{- $dir := include "app.databaseUrlDir" .context }}
{{- if eq (include "app.databaseConnection" .) "credentials" }}
- name: DATABASE_HOST
  value: {{ $database.host | quote }}
- name: DATABASE_PORT
  value: {{ $database.port | quote }}
- name: DATABASE_NAME
  value: {{ $database.name | quote }}
- name: DATABASE_USER_FILE
  value: {{ printf "%s/username" $dir }}
- name: DATABASE_PASSWORD_FILE
  value: {{ printf "%s/password" $dir }}
{{- else }}
- name: DATABASE_URL_FILE
  value: {{ printf "%s/url" $dir }}
{{- end }}
{{- if $database.caSecret }}
- name: DATABASE_SSLROOTCERT
  value: /run/secrets/database-ca/ca.crt
{{- end }}
{{- end }}

{{/*
The only paths an Ingress routes by default: the API and its OpenAPI document. Probes
and /metrics stay inside the cluster (the kubelet and Prometheus reach the pods).
*/}}
{{- define "app.publicPaths" -}}
- path: /api/
  pathType: Prefix
- path: /openapi.json
  pathType: Exact
{{- end }}

{{/*
Access control settings (service/auth/), as ConfigMap entries. A mounted JWKS
(auth.jwks) replaces the key fetch, so no egress to the issuer is needed then.
*/}}
{{- define "app.authJwksMounted" -}}
{{- if or .Values.auth.jwks.secretName .Values.auth.jwks.configMapName }}true{{ end }}
{{- end }}

{{- define "app.authJwksDir" -}}
/run/secrets/auth
{{- end }}

{{- define "app.authEnv" -}}
AUTH_DISABLED: {{ toString .Values.auth.disabled | quote }}
{{- if not .Values.auth.disabled }}
AUTH_ISSUER: {{ .Values.auth.issuer | quote }}
AUTH_AUDIENCE: {{ .Values.auth.audience | quote }}
AUTH_OWNER_CLAIM: {{ .Values.auth.ownerClaim | quote }}
{{- with .Values.auth.jwksUrl }}
AUTH_JWKS_URL: {{ . | quote }}
{{- end }}
{{- if include "app.authJwksMounted" . }}
AUTH_JWKS_FILE: {{ printf "%s/%s" (include "app.authJwksDir" .) .Values.auth.jwks.key | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Tracing (service/telemetry/tracing.py), as the OpenTelemetry SDK's own variables; none
at all without an endpoint, so the service neither traces nor exports.
*/}}
{{- define "app.tracingEnv" -}}
{{- with .Values.tracing }}
{{- if .endpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ .endpoint | quote }}
OTEL_SERVICE_NAME: {{ .serviceName | default (include "app.fullname" $) | quote }}
{{- $attributes := dict "deployment.environment.name" (toString $.Values.config.APP_ENV) "k8s.namespace.name" $.Release.Namespace }}
{{- with include "app.version" $ }}{{ $_ := set $attributes "service.version" . }}{{ end }}
{{- range $key, $value := .resourceAttributes }}{{ $_ := set $attributes $key (toString $value) }}{{ end }}
{{- $pairs := list }}
{{- range $key := keys $attributes | sortAlpha }}{{ $pairs = append $pairs (printf "%s=%s" $key (get $attributes $key)) }}{{ end }}
OTEL_RESOURCE_ATTRIBUTES: {{ join "," $pairs | quote }}
{{- with .sampler }}
OTEL_TRACES_SAMPLER: {{ . | quote }}
{{- end }}
{{- if not (kindIs "invalid" .ratio) }}
OTEL_TRACES_SAMPLER_ARG: {{ toString .ratio | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Pod-level security context shared by every pod that runs the app image.
*/}}
{{- define "app.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "app.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/*
Environment the chart itself sets on every app-image container. PORT, the metrics
directory and the database connection (its secret files) are tied to the pod spec (port
name, mounts), so they are not under `config:`. Call with (dict "context" $ "migration" bool).
*/}}
{{- define "app.chartEnv" -}}
- name: PORT
  value: {{ .context.Values.containerPort | quote }}
- name: PROMETHEUS_MULTIPROC_DIR
  value: /run/metrics
{{- include "app.databaseEnv" . }}
{{- end }}

{{/*
The volume holding the database credentials: the URL Secret's key, or the basic-auth
Secret's two keys. Call with (dict "context" $ "migration" bool).
*/}}
{{- define "app.databaseVolumeName" -}}
{{- if eq (include "app.databaseConnection" .) "credentials" -}}
database-credentials
{{- else -}}
database-url
{{- end }}
{{- end }}

{{/*
Everything an app-image container needs to start: env from the ConfigMap, the chart's
env, the user's extras, and the writable mounts of the read-only root filesystem.
Call with (dict "context" $ "migration" true|false).
*/}}
{{- define "app.containerEnvironment" -}}
{{- $ctx := .context -}}
envFrom:
  - configMapRef:
      name: {{ include "app.configMapName" $ctx }}
  {{- with $ctx.Values.extraEnvVarsSecret }}
  - secretRef:
      name: {{ . }}
  {{- end }}
env:
  {{- include "app.chartEnv" . | nindent 2 }}
  {{- with $ctx.Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: metrics
    mountPath: /run/metrics
  - name: {{ include "app.databaseVolumeName" . }}
    mountPath: {{ include "app.databaseUrlDir" $ctx }}
    readOnly: true
  {{- if include "app.authJwksMounted" $ctx }}
  - name: auth-jwks
    mountPath: {{ include "app.authJwksDir" $ctx }}
    readOnly: true
  {{- end }}
  {{- if $ctx.Values.database.caSecret }}
  # The CA bundle for sslmode=verify-full: DATABASE_SSLROOTCERT names it.
  - name: database-ca
    mountPath: /run/secrets/database-ca
    readOnly: true
  {{- end }}
  {{- with $ctx.Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
The volumes of a pod running the app image. The migration Job mounts its own Secret when
migration.existingSecret is set (the role that owns the schema), else the app's.
Call with (dict "context" $ "migration" true|false).
*/}}
{{- define "app.volumes" -}}
{{- $ctx := .context -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ $ctx.Values.tmpSizeLimit }}
- name: metrics
  emptyDir:
    sizeLimit: {{ $ctx.Values.metricsSizeLimit }}
{{- if eq (include "app.databaseConnection" .) "credentials" }}
# A kubernetes.io/basic-auth Secret, as CloudNativePG's managed roles have them.
- name: database-credentials
  secret:
    secretName: {{ $ctx.Values.database.credentialsSecret }}
    defaultMode: 0440
    items:
      - key: username
        path: username
      - key: password
        path: password
{{- else }}
{{- $own := and .migration (ne $ctx.Values.migration.existingSecret "") }}
- name: database-url
  secret:
    secretName: {{ ternary $ctx.Values.migration.existingSecret (include "app.databaseSecretName" $ctx) $own }}
    defaultMode: 0440
    items:
      - key: {{ ternary $ctx.Values.migration.existingSecretKey (include "app.databaseSecretKey" $ctx) $own }}
        path: url
{{- end }}
{{- with $ctx.Values.database.caSecret }}
- name: database-ca
  secret:
    secretName: {{ . }}
    defaultMode: 0444
    items:
      - key: {{ $ctx.Values.database.caSecretKey }}
        path: ca.crt
{{- end }}
{{- with $ctx.Values.auth.jwks }}
{{- if .secretName }}
- name: auth-jwks
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0440
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- else if .configMapName }}
- name: auth-jwks
  configMap:
    name: {{ .configMapName }}
    defaultMode: 0440
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- end }}
{{- end }}
{{- with $ctx.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Argo CD sync wave annotation, when the GitOps ordering switch is on.
Call with (dict "context" $ "wave" "-1").
*/}}
{{- define "app.syncWave" -}}
{{- if .context.Values.migration.argocdSyncWaves }}
argocd.argoproj.io/sync-wave: {{ .wave | quote }}
{{- end }}
{{- end }}
