{{/*
Self-managed certificates: `fma-certs ensure --secret` creates and renews the webhook's CA and
serving certificate in two Secrets, then files/sync_ca_bundle.py copies the CA bundle into both
webhook configurations and makes the webhook Service own the Secrets (so `helm uninstall`
removes them). The same Pod runs in the pre- and post-install/upgrade hook Jobs and in the
renewal CronJob.
*/}}

{{/* Role rules in the release namespace: exactly the two Secrets and the webhook Service. */}}
{{- define "fma.certsRoleRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: [{{ include "fma.tlsSecretName" . | quote }}, {{ include "fma.selfManagedCaSecretName" . | quote }}]
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
serviceAccountName: {{ .serviceAccount }}
restartPolicy: OnFailure
{{- with $ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $ctx.Values.podSecurityContext | nindent 2 }}
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
      {{- if .allowMissing }}
      - --allow-missing
      {{- end }}
    resources:
      {{- toYaml $sm.resources | nindent 6 }}
    securityContext:
      {{- toYaml $ctx.Values.containerSecurityContext | nindent 6 }}
{{- end }}
