{{/*
Checks across values that values.schema.json cannot express. Each message names the
field and says how to fix it. Included once, from deployment.yaml.
*/}}
{{- define "app.validate" -}}
{{- $v := .Values }}

{{- if not (or $v.existingSecret $v.database.credentialsSecret $v.devDatabase.enabled) }}
{{- fail "existingSecret is required: create a Secret holding the database URL (key DATABASE_URL, e.g. `kubectl create secret generic app-database --from-literal=DATABASE_URL=postgresql://...`) and set existingSecret to its name, or give the database by its parts (database.credentialsSecret, a basic-auth Secret, with database.host and database.name); only values/dev.yaml may use devDatabase.enabled=true instead" }}
{{- end }}
{{- $databases := list }}
{{- if $v.existingSecret }}{{ $databases = append $databases (printf "existingSecret (%q)" $v.existingSecret) }}{{ end }}
{{- if $v.database.credentialsSecret }}{{ $databases = append $databases (printf "database.credentialsSecret (%q)" $v.database.credentialsSecret) }}{{ end }}
{{- if $v.devDatabase.enabled }}{{ $databases = append $databases "devDatabase.enabled=true" }}{{ end }}
{{- if gt (len $databases) 1 }}
{{- fail (printf "%s both name a database: set only one" (join " and " $databases)) }}
{{- end }}
{{- if $v.database.credentialsSecret }}
{{- if or (not $v.database.host) (not $v.database.name) }}
{{- fail (printf "database.credentialsSecret (%q) needs database.host and database.name: the host (e.g. CloudNativePG's Pooler Service, app-db-pooler-rw) and the database to connect to" $v.database.credentialsSecret) }}
{{- end }}
{{- if and $v.migration.enabled (not $v.migration.existingSecret) }}
{{- fail "database.credentialsSecret needs migration.existingSecret: migrations run as the role that owns the schema, straight to the primary (they hold a session-level advisory lock, which a transaction pooler would break); set it to that role's URL Secret (CloudNativePG: <cluster>-app, with migration.existingSecretKey=uri)" }}
{{- end }}
{{- end }}

{{- if and (not $v.image.tag) (not $v.image.digest) }}
{{- fail "image.digest or image.tag is required: deploy an image that exists, e.g. --set image.digest=sha256:<digest> (staging, prod) or --set image.tag=<the tag `make image` printed> (dev); the chart never guesses a tag from its appVersion" }}
{{- end }}
{{- if eq (toString $v.image.tag) "latest" }}
{{- fail "image.tag must not be \"latest\": pin a version tag or set image.digest" }}
{{- end }}
{{- if and $v.image.requireDigest (not $v.image.digest) }}
{{- fail "image.digest is required because image.requireDigest=true: pass --set image.digest=sha256:<digest of the image you tested>" }}
{{- end }}

{{- if $v.devDatabase.enabled }}
{{- if not $v.devDatabase.auth.password }}
{{- fail "devDatabase.auth.password is empty: set a throwaway password in values/dev.yaml (the dev database is for local clusters only)" }}
{{- end }}
{{- if ne (toString $v.config.APP_ENV) "dev" }}
{{- fail (printf "devDatabase.enabled=true needs config.APP_ENV=dev (got %q): the in-cluster database is a dev convenience, use existingSecret elsewhere" (toString $v.config.APP_ENV)) }}
{{- end }}
{{- end }}

{{- /* values/staging.yaml and prod.yaml turn the policy on; prod must also say where its database is. */}}
{{- if and $v.networkPolicy.enabled (eq (toString $v.config.APP_ENV) "prod") (not $v.devDatabase.enabled) (not $v.networkPolicy.database.cidrs) (not $v.networkPolicy.database.podLabels) }}
{{- fail "networkPolicy.database.cidrs is empty with config.APP_ENV=prod: the pods could reach any address on the database port; set it to your database's address ranges, e.g. --set-json 'networkPolicy.database.cidrs=[\"10.20.0.0/24\"]', or networkPolicy.database.podLabels to its pods' labels (an in-cluster database: cnpg.io/cluster=<cluster> for CloudNativePG)" }}
{{- end }}
{{- if and $v.networkPolicy.database.cidrs $v.networkPolicy.database.podLabels }}
{{- fail "networkPolicy.database.cidrs and networkPolicy.database.podLabels are both set: the database is either at those addresses (outside the cluster) or those pods (inside it); set one" }}
{{- end }}

{{- if and $v.config.DEBUG (ne (toString $v.config.APP_ENV) "dev") }}
{{- fail (printf "config.DEBUG=true is only allowed with config.APP_ENV=dev (got %q)" (toString $v.config.APP_ENV)) }}
{{- end }}
{{- if and $v.serviceMonitor.enabled (not $v.config.METRICS_ENABLED) }}
{{- fail "serviceMonitor.enabled=true but config.METRICS_ENABLED=false: there would be no /metrics to scrape" }}
{{- end }}

{{- $chartOwned := dict "PORT" "containerPort" "PROMETHEUS_MULTIPROC_DIR" "the chart's /run/metrics mount" "DATABASE_URL_FILE" "existingSecret" "DATABASE_URL" "existingSecret (the URL is a mounted file, never an env var)" }}
{{- $_ := merge $chartOwned (dict "DATABASE_HOST" "database.host" "DATABASE_PORT" "database.port" "DATABASE_NAME" "database.name" "DATABASE_USER" "database.credentialsSecret" "DATABASE_USER_FILE" "database.credentialsSecret" "DATABASE_PASSWORD" "database.credentialsSecret" "DATABASE_PASSWORD_FILE" "database.credentialsSecret" "DATABASE_SSLROOTCERT" "database.caSecret") }}
{{- $_ := merge $chartOwned (dict "AUTH_ISSUER" "auth.issuer" "AUTH_AUDIENCE" "auth.audience" "AUTH_JWKS_URL" "auth.jwksUrl" "AUTH_JWKS_FILE" "auth.jwks" "AUTH_OWNER_CLAIM" "auth.ownerClaim" "AUTH_DISABLED" "auth.disabled") }}
{{- if $v.tracing.endpoint }}
{{- $_ := merge $chartOwned (dict "OTEL_EXPORTER_OTLP_ENDPOINT" "tracing.endpoint" "OTEL_SERVICE_NAME" "tracing.serviceName" "OTEL_RESOURCE_ATTRIBUTES" "tracing.resourceAttributes" "OTEL_TRACES_SAMPLER" "tracing.sampler" "OTEL_TRACES_SAMPLER_ARG" "tracing.ratio") }}
{{- end }}
{{- $seen := dict }}
{{- range $i, $e := $v.extraEnv }}
{{- if hasKey $chartOwned $e.name }}
{{- fail (printf "extraEnv[%d].name %q is set by the chart: use %s instead" $i $e.name (get $chartOwned $e.name)) }}
{{- end }}
{{- if hasKey $v.config $e.name }}
{{- fail (printf "extraEnv[%d].name %q is a config key: set config.%s instead" $i $e.name $e.name) }}
{{- end }}
{{- if hasKey $seen $e.name }}
{{- fail (printf "extraEnv[%d].name %q appears twice in extraEnv" $i $e.name) }}
{{- end }}
{{- $_ := set $seen $e.name true }}
{{- end }}

{{- $appEnv := toString $v.config.APP_ENV }}
{{- if and (has $appEnv (list "staging" "prod")) (not $v.auth.disabled) (or (not $v.auth.issuer) (not $v.auth.audience)) }}
{{- fail (printf "auth.issuer and auth.audience are required with config.APP_ENV=%s: set them to your identity provider's issuer URL and this API's audience (docs/auth.md), or set auth.disabled=true on purpose if a gateway in front already authenticates callers" $appEnv) }}
{{- end }}
{{- if and $v.auth.issuer (not $v.auth.audience) (not $v.auth.disabled) }}
{{- fail "auth.audience is required with auth.issuer: set it to the `aud` this API accepts (the pods would refuse to start)" }}
{{- end }}
{{- if and $v.auth.disabled (or $v.auth.issuer $v.auth.jwksUrl $v.auth.jwks.secretName $v.auth.jwks.configMapName) }}
{{- fail "auth.disabled=true and auth.issuer/jwksUrl/jwks are both set: unset auth.disabled to require tokens, or the others to serve without them" }}
{{- end }}
{{- if and $v.auth.jwks.secretName $v.auth.jwks.configMapName }}
{{- fail "auth.jwks.secretName and auth.jwks.configMapName are both set: the JWKS comes from one of them" }}
{{- end }}

{{- /* dev (a laptop's kind cluster) may route / to reach probes through its ingress. */}}
{{- if and $v.ingress.enabled (ne $appEnv "dev") }}
{{- range $v.ingress.hosts }}
{{- $host := .host }}
{{- range .paths }}
{{- if not (or (eq .path "/openapi.json") (eq .path "/api") (hasPrefix "/api/" .path)) }}
{{- fail (printf "ingress.hosts[%s].paths has %q: only /api/ and /openapi.json may be public (probes and /metrics stay inside the cluster); omit paths to get exactly those" $host .path) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- $chartVolumes := list "tmp" "metrics" "database-url" "database-credentials" "database-ca" "auth-jwks" }}
{{- range $i, $vol := $v.extraVolumes }}
{{- if has $vol.name $chartVolumes }}
{{- fail (printf "extraVolumes[%d].name %q is a volume of the chart (%s): choose another name" $i $vol.name (join ", " $chartVolumes)) }}
{{- end }}
{{- end }}
{{- $chartMounts := list "/tmp" "/run/metrics" (include "app.databaseUrlDir" $) (include "app.authJwksDir" $) }}
{{- range $i, $m := $v.extraVolumeMounts }}
{{- if has $m.mountPath $chartMounts }}
{{- fail (printf "extraVolumeMounts[%d].mountPath %q is mounted by the chart already (%s): choose another path" $i $m.mountPath (join ", " $chartMounts)) }}
{{- end }}
{{- end }}

{{- /* `--set tracing.ratio=0.05` gives the string "0.05" (Helm parses only integers on the
command line), `--set-json` and values files a number: both are accepted, as the same
decimal from 0 to 1; the schema bounds a number, this a string. */}}
{{- if kindIs "string" $v.tracing.ratio }}
{{- if or (not (regexMatch "^(0|1|0?\\.[0-9]+|[01]\\.[0-9]*)$" $v.tracing.ratio)) (gt (float64 $v.tracing.ratio) 1.0) }}
{{- fail (printf "tracing.ratio %q is not a number from 0 to 1: give the share of new traces to sample as a decimal, e.g. --set tracing.ratio=0.05 (or null to leave it unset)" $v.tracing.ratio) }}
{{- end }}
{{- end }}
{{- if and (not (kindIs "invalid" $v.tracing.ratio)) (not (has (toString $v.tracing.sampler) (list "traceidratio" "parentbased_traceidratio"))) }}
{{- fail (printf "tracing.ratio (%v) is only read by the traceidratio samplers, and tracing.sampler is %q: set tracing.sampler=parentbased_traceidratio, or unset tracing.ratio" $v.tracing.ratio (toString $v.tracing.sampler)) }}
{{- end }}

{{- if and $v.migration.argocdHook (not $v.migration.argocdSyncWaves) }}
{{- fail "migration.argocdHook=true needs migration.argocdSyncWaves=true: the hook Job must run after the ConfigMap, Secrets, ServiceAccount and NetworkPolicy (wave -2) it depends on" }}
{{- end }}

{{- if $v.ingress.enabled }}
{{- $hosts := list }}
{{- range $v.ingress.hosts }}{{ $hosts = append $hosts .host }}{{ end }}
{{- range $i, $tls := $v.ingress.tls }}
{{- range $tls.hosts }}
{{- if not (has . $hosts) }}
{{- fail (printf "ingress.tls[%d].hosts has %q, which is not in ingress.hosts (%s): the certificate would not cover a served host" $i . (join ", " $hosts)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- $threads := int $v.config.GUNICORN_THREADS }}
{{- if lt (add (int $v.config.DB_POOL_SIZE) (int $v.config.DB_MAX_OVERFLOW)) $threads }}
{{- fail (printf "config.DB_POOL_SIZE (%d) + config.DB_MAX_OVERFLOW (%d) is less than config.GUNICORN_THREADS (%d): the pods would refuse to start. Set config.DB_POOL_SIZE to at least %d" (int $v.config.DB_POOL_SIZE) (int $v.config.DB_MAX_OVERFLOW) $threads $threads) }}
{{- end }}

{{- /* The database deadline (service/config.py refuses the same at start): above the
statement timeout, and over 1 s before gunicorn's worker timeout. */}}
{{- $deadline := int $v.config.DB_DEADLINE_MS }}
{{- $statementTimeout := int $v.config.DB_STATEMENT_TIMEOUT_MS }}
{{- if and (gt $statementTimeout 0) (le $deadline $statementTimeout) }}
{{- fail (printf "config.DB_DEADLINE_MS (%d) must be above config.DB_STATEMENT_TIMEOUT_MS (%d): the pods would refuse to start. Set config.DB_DEADLINE_MS to %d or more" $deadline $statementTimeout (add $statementTimeout 1000)) }}
{{- end }}
{{- if gt (add $deadline 1000) (mul (int $v.config.GUNICORN_TIMEOUT) 1000) }}
{{- fail (printf "config.DB_DEADLINE_MS (%d) must end a request at least 1 s before config.GUNICORN_TIMEOUT (%d s) kills its worker: the pods would refuse to start. Lower config.DB_DEADLINE_MS or raise config.GUNICORN_TIMEOUT" $deadline (int $v.config.GUNICORN_TIMEOUT)) }}
{{- end }}

{{- /* Connection budget: at the peak of a rollout at the HPA maximum, every worker of
every pod may hold its whole pool, and the migration Job one more connection. */}}
{{- $pods := int $v.replicaCount }}
{{- if $v.autoscaling.enabled }}{{ $pods = int $v.autoscaling.maxReplicas }}{{ end }}
{{- $surge := toString $v.rollingUpdateMaxSurge }}
{{- $surgePods := 0 }}
{{- if hasSuffix "%" $surge }}
{{- $surgePods = int (ceil (divf (mulf $pods (float64 (trimSuffix "%" $surge))) 100)) }}
{{- else }}
{{- $surgePods = int $surge }}
{{- end }}
{{- $perPod := mul (int $v.config.GUNICORN_WORKERS) (add (int $v.config.DB_POOL_SIZE) (int $v.config.DB_MAX_OVERFLOW)) }}
{{- $needed := add (mul (add $pods $surgePods) $perPod) 1 }}
{{- $budget := sub (int $v.database.maxConnections) (int $v.database.reservedConnections) }}
{{- if gt $needed $budget }}
{{- fail (printf "database connection budget exceeded: %d pods at peak (%s %d + rollingUpdateMaxSurge %d) x config.GUNICORN_WORKERS %d x (config.DB_POOL_SIZE %d + config.DB_MAX_OVERFLOW %d) + 1 migration Job = %d connections, but database.maxConnections %d - database.reservedConnections %d leaves %d. Lower the pool, workers or replicas, or set database.maxConnections to your server's max_connections" (add $pods $surgePods) (ternary "autoscaling.maxReplicas" "replicaCount" $v.autoscaling.enabled) $pods $surgePods (int $v.config.GUNICORN_WORKERS) (int $v.config.DB_POOL_SIZE) (int $v.config.DB_MAX_OVERFLOW) $needed (int $v.database.maxConnections) (int $v.database.reservedConnections) $budget) }}
{{- end }}

{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) is greater than autoscaling.maxReplicas (%d)" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- end }}
{{- end }}
