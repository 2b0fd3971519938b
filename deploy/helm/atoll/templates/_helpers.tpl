{{/* Names, labels and the pieces several templates share. Nothing here
may be random or time-dependent: two renders of one input are identical. */}}

{{/* The chart name (nameOverride wins). */}}
{{- define "atoll.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of every object: <release>-<name>, or the release name
when it already contains the chart name. At most 50 characters so that
"<fullname>-headless" and pod names stay DNS labels. */}}
{{- define "atoll.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The headless Service: stable pod DNS names, not-ready addresses too. */}}
{{- define "atoll.headless" -}}
{{- printf "%s-headless" (include "atoll.fullname" .) }}
{{- end }}

{{- define "atoll.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "atoll.selectorLabels" -}}
app.kubernetes.io/name: {{ include "atoll.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "atoll.labels" -}}
helm.sh/chart: {{ include "atoll.chart" . }}
{{ include "atoll.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.cluster.role }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "atoll.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret holding the cluster secret. Fails the render when no source
is given: a secret generated at render time would change on every render
(and restart every pod on every GitOps sync). */}}
{{- define "atoll.clusterSecretName" -}}
{{- if .Values.cluster.secret.existingSecret }}
{{- .Values.cluster.secret.existingSecret }}
{{- else if or .Values.cluster.secret.value .Values.externalSecrets.enabled }}
{{- printf "%s-cluster-secret" (include "atoll.fullname" .) }}
{{- else }}
{{- fail "atoll: no cluster secret. Create one (kubectl create secret generic atoll-cluster --from-literal=cluster-secret=$(head -c 32 /dev/urandom | base64)) and set cluster.secret.existingSecret=atoll-cluster, or set cluster.secret.value, or externalSecrets.enabled. The chart never generates one." }}
{{- end }}
{{- end }}

{{/* The htpasswd Secret, or empty. */}}
{{- define "atoll.htpasswdSecretName" -}}
{{- if .Values.auth.htpasswd.existingSecret }}
{{- .Values.auth.htpasswd.existingSecret }}
{{- else if and .Values.externalSecrets.enabled .Values.externalSecrets.htpasswd.remoteKey }}
{{- printf "%s-htpasswd" (include "atoll.fullname" .) }}
{{- end }}
{{- end }}

{{/* The Secret of the API certificate (tls.crt, tls.key): tls.existingSecret,
or the one the cert-manager Certificate of templates/certificate.yaml
writes. Empty when tls is off; fails on no source or two. */}}
{{- define "atoll.tlsSecretName" -}}
{{- $t := .Values.tls }}
{{- if and $t.certManager.enabled (not $t.enabled) }}
{{- fail "atoll: tls.certManager.enabled needs tls.enabled" }}
{{- end }}
{{- if $t.enabled }}
{{- if and $t.existingSecret $t.certManager.enabled }}
{{- fail "atoll: set tls.existingSecret or tls.certManager.enabled, not both" }}
{{- else if $t.existingSecret }}
{{- $t.existingSecret }}
{{- else if $t.certManager.enabled }}
{{- if not $t.certManager.issuerRef.name }}
{{- fail "atoll: tls.certManager.enabled needs tls.certManager.issuerRef.name (an Issuer or ClusterIssuer of cert-manager)" }}
{{- end }}
{{- printf "%s-tls" (include "atoll.fullname" .) }}
{{- else }}
{{- fail "atoll: tls.enabled needs tls.existingSecret (a kubernetes.io/tls Secret) or tls.certManager.enabled (a cert-manager Certificate)" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret of the peer certificate (ca.crt, tls.crt, tls.key), as
atoll.tlsSecretName for tls.peer. */}}
{{- define "atoll.peerTlsSecretName" -}}
{{- $t := .Values.tls.peer }}
{{- if and $t.certManager.enabled (not $t.enabled) }}
{{- fail "atoll: tls.peer.certManager.enabled needs tls.peer.enabled" }}
{{- end }}
{{- if $t.enabled }}
{{- if and $t.existingSecret $t.certManager.enabled }}
{{- fail "atoll: set tls.peer.existingSecret or tls.peer.certManager.enabled, not both" }}
{{- else if $t.existingSecret }}
{{- $t.existingSecret }}
{{- else if $t.certManager.enabled }}
{{- if not $t.certManager.issuerRef.name }}
{{- fail "atoll: tls.peer.certManager.enabled needs tls.peer.certManager.issuerRef.name (a CA Issuer: the Secret needs ca.crt)" }}
{{- end }}
{{- printf "%s-peer-tls" (include "atoll.fullname" .) }}
{{- else }}
{{- fail "atoll: tls.peer.enabled needs tls.peer.existingSecret (ca.crt, tls.crt, tls.key) or tls.peer.certManager.enabled (a cert-manager Certificate)" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The DNS names every peer certificate must hold: the headless Service's
wildcard (the --join and --advertise names of the pods), and the
advertise domain's wildcard when set. A list, as YAML. */}}
{{- define "atoll.peerDnsNames" -}}
{{- $names := list (printf "*.%s.%s.svc.%s" (include "atoll.headless" .) .Release.Namespace .Values.cluster.clusterDomain) }}
{{- with .Values.cluster.advertiseDomain }}
{{- $names = append $names (printf "*.%s" .) }}
{{- end }}
{{- toYaml $names }}
{{- end }}

{{/* A Gateway API duration (GEP-2257: 1h30m, 10s, 500ms) in milliseconds. */}}
{{- define "atoll.durationMs" -}}
{{- $ms := 0 }}
{{- range regexFindAll "[0-9]+(ms|h|m|s)" . -1 }}
{{- $n := regexFind "^[0-9]+" . | atoi }}
{{- $u := trimPrefix (regexFind "^[0-9]+" .) . }}
{{- $ms = add $ms (mul $n (get (dict "h" 3600000 "m" 60000 "s" 1000 "ms" 1) $u)) }}
{{- end }}
{{- $ms }}
{{- end }}

{{/* The peer DNS name of pod i: <fullname>-i.<headless>.<ns>.svc.<domain>. */}}
{{- define "atoll.podHost" -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "atoll.fullname" .root) (int .i) (include "atoll.headless" .root) .root.Release.Namespace .root.Values.cluster.clusterDomain }}
{{- end }}

{{/* The --join list: every voter pod's peer address (pods 0..voters-1 of
the headless Service) plus cluster.join for voters; cluster.join alone
for standby and edge pods. */}}
{{- define "atoll.join" -}}
{{- $list := list }}
{{- if eq .Values.cluster.role "voter" }}
{{- range $i := until (int .Values.cluster.voters) }}
{{- $list = append $list (printf "%s:5001" (include "atoll.podHost" (dict "root" $ "i" $i))) }}
{{- end }}
{{- end }}
{{- range .Values.cluster.join }}
{{- $list = append $list . }}
{{- end }}
{{- if not $list }}
{{- fail (printf "atoll: cluster.role %s needs cluster.join: the peer addresses (host:5001) of the cluster to join" .Values.cluster.role) }}
{{- end }}
{{- join "," $list }}
{{- end }}

{{/* Checks that need more than the schema. */}}
{{- define "atoll.validate" -}}
{{- if and (eq .Values.cluster.role "voter") (gt (int .Values.cluster.voters) (int .Values.replicas)) }}
{{- fail (printf "atoll: cluster.voters (%d) exceeds replicas (%d): the cluster would wait for voters that never start" (int .Values.cluster.voters) (int .Values.replicas)) }}
{{- end }}
{{- $_ := include "atoll.tlsSecretName" . }}
{{- $_ := include "atoll.peerTlsSecretName" . }}
{{- if and .Values.externalSecrets.enabled (not .Values.externalSecrets.secretStoreRef.name) }}
{{- fail "atoll: externalSecrets.enabled needs externalSecrets.secretStoreRef.name" }}
{{- end }}
{{- if and .Values.externalSecrets.enabled (not .Values.cluster.secret.existingSecret) (not .Values.externalSecrets.clusterSecret.remoteKey) }}
{{- fail "atoll: externalSecrets.enabled needs externalSecrets.clusterSecret.remoteKey" }}
{{- end }}
{{- end }}

{{/* http or https, for probes and ServiceMonitor. */}}
{{- define "atoll.scheme" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}
