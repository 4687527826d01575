{{/*
Pieces of the two webhook configurations. They mirror webhook/registration.py
(`build_webhook_configurations`), which tests/chart compares them with, so read that module's
docstring for why each selector and failure policy is what it is.
*/}}

{{/* clientConfig of one webhook: (dict "ctx" $ "path" "/mutate-pods"). The caBundle comes from
cert-manager's CA injector or from the certificate Jobs, never from the template. */}}
{{- define "fma.webhookClientConfig" -}}
service:
  namespace: {{ .ctx.Release.Namespace }}
  name: {{ include "fma.webhookName" .ctx }}
  path: {{ .path }}
  port: 443
{{- end }}

{{/* The fields every webhook entry shares. */}}
{{- define "fma.webhookCommon" -}}
sideEffects: None
admissionReviewVersions: ["v1"]
timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
matchPolicy: Equivalent
{{- end }}

{{/* Rule for Pods: (list "CREATE" "UPDATE"). */}}
{{- define "fma.podRule" -}}
- apiGroups: [""]
  apiVersions: ["v1"]
  resources: ["pods"]
  operations: {{ toJson . }}
  scope: Namespaced
{{- end }}

{{/*
matchExpressions that keep the Pod webhooks out of the webhook's own namespace (so its Pods can
start while no webhook runs) and, from 1.21, out of the system namespaces by name. Kubernetes
1.20 does not label namespaces with their name, so there only the
`fma.llm-d.ai/webhook-namespace: "true"` label excludes (label the release namespace with it).
*/}}
{{- define "fma.notOwnNamespace" -}}
- key: fma.llm-d.ai/webhook-namespace
  operator: NotIn
  values: ["true"]
{{- if include "fma.kube121" . }}
- key: kubernetes.io/metadata.name
  operator: NotIn
  values: {{ toJson (list .Release.Namespace "kube-system" "kube-public" "kube-node-lease" | uniq) }}
{{- end }}
{{- end }}

{{/* cert-manager's CA injector copies the CA of this Certificate into every caBundle. */}}
{{- define "fma.injectCaFrom" -}}
{{- printf "%s/%s" .Release.Namespace (include "fma.certificateName" .) }}
{{- end }}

{{/*
The Pod guard outside served namespaces, as (name, label) in order (registration.py's
`POD_GUARD_LABELS`): an entry takes the Pods that carry its label and none of the labels before
it. Both labels are ones only the controllers may write (contracts §11), so a Pod can neither be
created with one by anyone else nor drop one to escape the guard; on UPDATE the apiserver calls
an entry when the old or the new Pod matches. Ordinary Pods never match, so the guard's
`failurePolicy: Fail` never stands between them and the apiserver.
*/}}
{{- define "fma.podGuardLabels" -}}
- name: pods-bound.fma.llm-d.ai
  label: dual-pods.llm-d.ai/dual
- name: pods-launchers.fma.llm-d.ai
  label: dual-pods.llm-d.ai/launcher-config-name
{{- end }}
