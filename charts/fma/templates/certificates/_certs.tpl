{{/*
Self-managed certificates: `fma-certs ensure --secret` creates and renews the webhook's CA and
serving certificate in two Secrets, and (with controlAuth.enabled) `fma-certs ensure-control`
the controller's control credential and its CA in two more; then files/sync_ca_bundle.py copies
the webhook's CA bundle into both webhook configurations and makes the webhook Service own every
one of those Secrets (so `helm uninstall` removes them). The same Pod runs in the pre- and
post-install/upgrade hook Jobs and in the renewal CronJob.
*/}}

{{/* The Secrets fma-certs writes, as a JSON list. */}}
{{- define "fma.certsSecretNames" -}}
{{- $names := list (include "fma.tlsSecretName" .) (include "fma.selfManagedCaSecretName" .) }}
{{- if .Values.controlAuth.enabled }}
{{- $names = concat $names (list (include "fma.controlSecretName" .) (include "fma.controlCaSecretName" .)) }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/* Role rules in the release namespace: exactly fma-certs' Secrets and the webhook Service. */}}
{{- define "fma.certsRoleRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: {{ include "fma.certsSecretNames" . }}
  verbs: ["get", "update", "patch"]
- apiGroups: [""]
  resources: ["services"]
  resourceNames: [{{ include "fma.webhookName" . | quote }}]
  verbs: ["get"]
{{- end }}

{{/* ClusterRole rules: the caBundle of this release's two webhook configurations. */}}
{{- define "fma.certsClusterRoleRules" -}}
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"]
  resourceNames: [{{ include "fma.webhookName" . | quote }}]
  verbs: ["get", "patch"]
{{- end }}

{{/* The certificate Pod: (dict "ctx" $ "serviceAccount" NAME "allowMissing" BOOL). */}}
{{- define "fma.certsPodSpec" -}}
{{- $ctx := .ctx }}
{{- $sm := $ctx.Values.certificates.selfManaged -}}
{{- $control := $ctx.Values.controlAuth -}}
serviceAccountName: {{ .serviceAccount }}
restartPolicy: OnFailure
{{- with $ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $ctx.Values.podSecurityContext | nindent 2 }}
{{- with $sm.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
initContainers:
  - name: ensure
    image: {{ include "fma.image" $ctx }}
    imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
    command: ["fma-certs"]
    args:
      - ensure
      - --secret={{ include "fma.tlsSecretName" $ctx }}
      - --ca-secret={{ include "fma.selfManagedCaSecretName" $ctx }}
      - --namespace={{ $ctx.Release.Namespace }}
      - --service={{ include "fma.webhookName" $ctx }}
      - --cluster-domain={{ $ctx.Values.clusterDomain }}
      - --leaf-lifetime={{ $sm.leafLifetime }}
      - --renew-before={{ $sm.renewBefore }}
      - --ca-lifetime={{ $sm.caLifetime }}
      - --ca-renew-before={{ $sm.caRenewBefore }}
    resources:
      {{- toYaml $sm.resources | nindent 6 }}
    securityContext:
      {{- toYaml $ctx.Values.containerSecurityContext | nindent 6 }}
  {{- if $control.enabled }}
  - name: ensure-control
    image: {{ include "fma.image" $ctx }}
    imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
    command: ["fma-certs"]
    args:
      - ensure-control
      - --secret={{ include "fma.controlSecretName" $ctx }}
      - --ca-secret={{ include "fma.controlCaSecretName" $ctx }}
      - --namespace={{ $ctx.Release.Namespace }}
      - --leaf-lifetime={{ $control.selfManaged.leafLifetime }}
      - --renew-before={{ $control.selfManaged.renewBefore }}
      - --ca-lifetime={{ $control.selfManaged.caLifetime }}
      - --ca-renew-before={{ $control.selfManaged.caRenewBefore }}
    resources:
      {{- toYaml $sm.resources | nindent 6 }}
    securityContext:
      {{- toYaml $ctx.Values.containerSecurityContext | nindent 6 }}
  {{- end }}
containers:
  - name: sync-ca-bundle
    image: {{ include "fma.image" $ctx }}
    imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
    command: ["python", "-c", {{ $ctx.Files.Get "files/sync_ca_bundle.py" | quote }}]
    args:
      - --namespace={{ $ctx.Release.Namespace }}
      - --secret={{ include "fma.tlsSecretName" $ctx }}
      - --ca-secret={{ include "fma.selfManagedCaSecretName" $ctx }}
      - --configuration={{ include "fma.webhookName" $ctx }}
      - --owner-service={{ include "fma.webhookName" $ctx }}
      {{- if $control.enabled }}
      - --adopt-secret={{ include "fma.controlSecretName" $ctx }}
      - --adopt-secret={{ include "fma.controlCaSecretName" $ctx }}
      {{- end }}
      {{- if .allowMissing }}
      - --allow-missing
      {{- end }}
    resources:
      {{- toYaml $sm.resources | nindent 6 }}
    securityContext:
      {{- toYaml $ctx.Values.containerSecurityContext | nindent 6 }}
{{- end }}
